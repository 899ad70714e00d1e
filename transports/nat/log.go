package nat

import (
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
	gvlog "gvisor.dev/gvisor/pkg/log"

	"github.com/umlswitch/umlswitch/internal/ratelog"
)

// gvisor-tap-vsock logs through logrus's process-wide logger and gVisor
// through its own, both to stderr by default, some lines once per packet a
// guest sends. Both go to the switch's log instead: warnings and errors
// only, at most one line per libLogEvery, since a guest can provoke them
// at will. They name no port (the loggers are the process's), so they go
// to the logger of the NAT port opened last.
var (
	libLogOnce  sync.Once
	libLogTo    atomic.Pointer[slog.Logger]
	libLogLimit = ratelog.Every{Period: libLogEvery}
)

const libLogEvery = 10 * time.Second

func routeLibraryLogs(l *slog.Logger) {
	libLogTo.Store(l)
	libLogOnce.Do(func() {
		logrus.SetOutput(io.Discard)
		logrus.SetFormatter(silent{})
		logrus.SetLevel(logrus.WarnLevel)
		logrus.AddHook(hook{})
		gvlog.SetTarget(emitter{})
		gvlog.SetLevel(gvlog.Warning)
	})
}

func libLog(msg string) {
	if l := libLogTo.Load(); l != nil {
		libLogLimit.Log(l, slog.LevelWarn, "nat: "+msg)
	}
}

// hook takes logrus's warnings and errors.
type hook struct{}

func (hook) Levels() []logrus.Level {
	return []logrus.Level{logrus.PanicLevel, logrus.FatalLevel, logrus.ErrorLevel, logrus.WarnLevel}
}

func (hook) Fire(e *logrus.Entry) error {
	libLog(e.Message)
	return nil
}

// silent spares logrus formatting what goes to io.Discard.
type silent struct{}

func (silent) Format(*logrus.Entry) ([]byte, error) { return nil, nil }

// emitter takes gVisor's warnings.
type emitter struct{}

func (emitter) Emit(_ int, level gvlog.Level, _ time.Time, format string, v ...any) {
	if level <= gvlog.Warning {
		libLog(fmt.Sprintf(format, v...))
	}
}
