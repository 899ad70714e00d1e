package bess

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/umlswitch/umlswitch/capture"
	"github.com/umlswitch/umlswitch/fabric"
	"github.com/umlswitch/umlswitch/transports/portkind"
	"github.com/umlswitch/umlswitch/transports/porttest"
)

// BenchmarkSwitchOverBESS: two UML-like clients on one listener, through a
// real switch; with no mirror, with a pcapng file mirror (the ring and the
// writer at work on every frame, both directions), and with a live-stream
// mirror no reader has joined (what every switch carries for `umlswitch
// capture`).
func BenchmarkSwitchOverBESS(b *testing.B) {
	for _, mirror := range []string{"none", "file", "idle-stream"} {
		b.Run("mirror="+mirror, func(b *testing.B) {
			sw := porttest.NewSwitch(b, fabric.Config{})
			var cfg capture.Config
			switch mirror {
			case "file":
				cfg = capture.Config{File: filepath.Join(b.TempDir(), "bench.pcapng"), Logger: porttest.Quiet()}
			case "idle-stream":
				cfg = capture.Config{Stream: filepath.Join(b.TempDir(), "bench.capture"), Logger: porttest.Quiet()}
			}
			if mirror != "none" {
				m, err := capture.New(cfg)
				if err != nil {
					b.Fatal(err)
				}
				sw.AddMirror(m)
				b.Cleanup(func() {
					m.Close()
					if st := m.Stats(); mirror == "file" {
						b.ReportMetric(float64(st.Dropped)/float64(max(st.Captured+st.Dropped, 1)), "capture-drop-ratio")
					}
				})
			}
			tr, err := Listen(Config{Options: Options{Path: b.TempDir() + "/sw.bess"}, Common: portkind.Common{Logger: porttest.Quiet()}})
			if err != nil {
				b.Fatal(err)
			}
			tr.Start(sw)
			sw.OnStop(func() { tr.Close() })
			from, to := dial(b, tr.Path()), dial(b, tr.Path())
			for deadline := time.Now().Add(5 * time.Second); len(sw.Stats()) < 2 && time.Now().Before(deadline); {
				time.Sleep(time.Millisecond)
			}
			porttest.BenchSwitch(b, porttest.BenchPeer{Fd: from.fd, Send: porttest.Plain, Per: 1},
				porttest.BenchPeer{Fd: to.fd, Send: porttest.Plain, Per: 1}, mac(1), mac(2))
		})
	}
}
