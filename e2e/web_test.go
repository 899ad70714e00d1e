package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/google/gopacket/pcapgo"
)

// pageState is what the page shows, read from its DOM.
type pageState struct {
	Polls    int                 `json:"polls"`
	Switches []string            `json:"switches"`
	Ports    map[string]pagePort `json:"ports"`
	MACs     []string            `json:"macs"`
	Drawing  string              `json:"drawing"` // the topology's text
	Events   string              `json:"events"`
	Access   string              `json:"access"`
}

type pagePort struct {
	Link     string  `json:"link"`
	RxFrames uint64  `json:"rx_frames"`
	RxRate   float64 `json:"rx_rate"`
	Disabled bool    `json:"disabled"` // its link button
}

const readPage = `(() => {
  const ports = {};
  for (const tr of document.querySelectorAll('#ports tbody tr')) {
    const td = tr.children;
    ports[tr.dataset.port] = { link: td[5].textContent, rx_frames: Number(td[8].dataset.rx || 0),
      rx_rate: Number(td[6].dataset.rx || 0), disabled: tr.querySelector('button.link-toggle').disabled };
  }
  return {
    polls: Number(document.body.dataset.polls || 0),
    switches: [...document.querySelectorAll('#switches tbody tr')].map(tr => tr.dataset.switch),
    ports,
    macs: [...document.querySelectorAll('#fdb tbody tr')].map(tr => tr.children[1].textContent),
    drawing: document.getElementById('topology').textContent,
    events: document.getElementById('events').textContent,
    access: document.getElementById('access-text').textContent,
  };
})()`

// The page of a lab of two switches (red with two UMLs, blue with one,
// joined by a pair of datagram ports) in headless Chromium: every switch,
// port and MAC is shown, counters agree with the API, rates move while the
// UMLs ping, and a link set down from the page stops the pings until it is
// set up again. The screenshot goes to $UMLSWITCH_WEB_SCREENSHOT if set.
func TestWebPageInChromium(t *testing.T) {
	requireE2E(t)
	needTool(t, "chromium", "chromium")
	t.Parallel()
	d := scratch(t)
	red, blue := filepath.Join(d, "red.ctl"), filepath.Join(d, "blue.ctl")
	rdg, bdg := filepath.Join(d, "r.dgram"), filepath.Join(d, "b.dgram")
	conf := filepath.Join(d, "lab.yaml")
	os.WriteFile(conf, []byte(fmt.Sprintf(`
switches:
  - name: red
    ports: [{transport: daemon, path: %s, name: red}, {transport: dgram, path: %s, peer: %s, name: to-blue}]
  - name: blue
    ports: [{transport: daemon, path: %s, name: blue}, {transport: dgram, path: %s, peer: %s, name: to-red}]
`, red, rdg, bdg, blue, bdg, rdg)), 0o644)
	addr := freeLoopbackAddr(t)
	tokenFile := filepath.Join(d, "web.token")
	startSwitch(t, nil, []string{red, blue, tokenFile}, "-config", conf, "-state", "none", "-web", addr, "-web-rw", "-web-token", tokenFile)
	token, err := os.ReadFile(tokenFile)
	if err != nil {
		t.Fatal(err)
	}

	u1 := bootUML(t, umlConfig{net: daemonNet(1, red), ip: ip(1), peers: []string{ip(2), ip(3)},
		vars: map[string]string{"watch": ip(3)}})
	u2 := bootUML(t, umlConfig{net: daemonNet(2, red), ip: ip(2), peers: []string{ip(1), ip(3)}})
	u3 := bootUML(t, umlConfig{net: daemonNet(3, blue), ip: ip(3), peers: []string{ip(1), ip(2)},
		vars: map[string]string{"watch": ip(2)}})
	expectAllOK(t, []*uml{u1, u2, u3}, [][]string{{ip(2), ip(3)}, {ip(1), ip(3)}, {ip(1), ip(2)}})
	u1.waitWatch(t, "pings answered", 30*time.Second, func(r map[int]string, last int) bool { return r[last] == "ok" })

	alloc, cancel := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath("chromium"), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.WindowSize(1400, 1000),
		chromedp.UserDataDir(filepath.Join(d, "chromium")))...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(alloc)
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	url := "http://" + addr + "/#token=" + strings.TrimSpace(string(token))
	if err := chromedp.Do(ctx, chromedp.Navigate(url),
		chromedp.Poll[chromedp.Void](`Number(document.body.dataset.polls || 0) >= 3`, chromedp.WithPollingTimeout(30*time.Second))); err != nil {
		t.Fatalf("chromium: %v", err)
	}
	read := func() pageState {
		t.Helper()
		st, err := chromedp.Run(ctx, chromedp.Evaluate[pageState](readPage))
		if err != nil {
			t.Fatalf("chromium: read the page: %v", err)
		}
		return st
	}

	// Names, MACs and counters, against the API read just before and
	// after (the page polls once a second: let it poll after the first).
	var before, after []ctlPort
	ctlJSON(t, red, &before, "-all", "ports")
	time.Sleep(1500 * time.Millisecond)
	page := read()
	ctlJSON(t, red, &after, "-all", "ports")
	for _, sw := range []string{"red", "blue"} {
		if !slices.Contains(page.Switches, sw) || !strings.Contains(page.Drawing, sw) {
			t.Errorf("switch %s missing from the page: %v, drawing %q", sw, page.Switches, page.Drawing)
		}
	}
	rx := map[string][2]uint64{}
	for _, p := range before {
		rx[p.Name] = [2]uint64{p.RxFrames, 0}
	}
	clients := 0
	for _, p := range after {
		pp, ok := page.Ports[p.Name]
		if !ok {
			t.Errorf("port %s missing from the page", p.Name)
			continue
		}
		if p.ID < 0 {
			continue // a listener
		}
		clients++
		if !strings.Contains(page.Drawing, p.Name) {
			t.Errorf("port %s missing from the drawing %q", p.Name, page.Drawing)
		}
		if lo := rx[p.Name][0]; pp.RxFrames < lo || pp.RxFrames > p.RxFrames {
			t.Errorf("port %s: the page shows %d frames in; the API said %d before and %d after", p.Name, pp.RxFrames, lo, p.RxFrames)
		}
		if pp.Link != "up" || pp.Disabled {
			t.Errorf("port %s: link %q, its button disabled %v", p.Name, pp.Link, pp.Disabled)
		}
	}
	if clients != 5 { // three UMLs and the two datagram ports
		t.Errorf("%d ports attached, want 5: %+v", clients, after)
	}
	for i := 1; i <= 3; i++ {
		if !slices.Contains(page.MACs, mac(i)) || !strings.Contains(page.Drawing, mac(i)) {
			t.Errorf("MAC %s missing: table %v, drawing %q", mac(i), page.MACs, page.Drawing)
		}
	}
	if !strings.Contains(page.Access, "changes allowed") {
		t.Errorf("access: %q", page.Access)
	}

	// The third UML's port, where its MAC is learned on blue.
	port := portOfMAC(t, blue, mac(3))
	// Rates move: the watch pings cross it five times a second.
	moving := false
	for deadline := time.Now().Add(10 * time.Second); !moving && time.Now().Before(deadline); time.Sleep(300 * time.Millisecond) {
		moving = read().Ports[port].RxRate > 0
	}
	if !moving {
		t.Errorf("port %s: no rate shown while the UMLs ping", port)
	}

	// Captures as the page takes them, two seconds each at once: of switch
	// red, and of its port red.1 alone.
	captured, err := chromedp.Run(ctx, chromedp.Evaluate[[2]string](`(async () => {
  const take = async q => {
    const ctl = new AbortController();
    const r = await fetch('/v1/capture?' + q, { headers: headers(), signal: ctl.signal });
    const reader = r.body.getReader();
    const chunks = [];
    setTimeout(() => ctl.abort(), 2000);
    try { for (;;) { const { value, done } = await reader.read(); if (done) break; chunks.push(value); } } catch (_) {}
    return btoa(Array.from(concat(chunks), c => String.fromCharCode(c)).join(''));
  };
  return await Promise.all([take('switch=red'), take('switch=red&port=red.1')]);
})()`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("a capture from the page: %v", err)
	}
	all, one := pcapngInterfaces(t, captured[0]), pcapngInterfaces(t, captured[1])
	if len(all) < 2 || len(one) != 1 || one["red.1"] == 0 {
		t.Errorf("the page's capture of red: packets by port %v; of red.1 alone %v", all, one)
	}

	// The page's own button: a capture of red for 5 s, which ends by itself.
	redButton := `tr[data-switch="red"] button.capture`
	if err := chromedp.Do(ctx,
		chromedp.Evaluate[chromedp.Void](`document.getElementById('capture-seconds').value = '5'`),
		chromedp.Click(chromedp.CSS(redButton)),
		chromedp.Poll[chromedp.Void](`document.querySelector('`+redButton+`').textContent === 'Stop and save'`, chromedp.WithPollingTimeout(5*time.Second)),
		chromedp.Poll[chromedp.Void](`document.querySelector('`+redButton+`').textContent === 'Capture'`, chromedp.WithPollingTimeout(15*time.Second))); err != nil {
		t.Errorf("a 5 s capture from the page's button: %v", err)
	}

	// Link down from the page: the pings to the third UML stop.
	button := `tr[data-port="` + port + `"] button.link-toggle`
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(button)),
		chromedp.Poll[chromedp.Void](`document.querySelector('`+button+`').dataset.state === 'down'`, chromedp.WithPollingTimeout(10*time.Second))); err != nil {
		t.Fatalf("link down from the page: %v", err)
	}
	u1.expectUnansweredSince(t, "link down from the page")
	page = read()
	if page.Ports[port].Link != "down" || !strings.Contains(page.Events, "link-down") {
		t.Errorf("the page after link down: port %+v, events %q", page.Ports[port], page.Events)
	}
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if path := os.Getenv("UMLSWITCH_WEB_SCREENSHOT"); path != "" {
		if err := os.WriteFile(path, shot, 0o644); err != nil {
			t.Error(err)
		}
	}

	// And up again: the answers come back.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(button))); err != nil {
		t.Fatalf("link up from the page: %v", err)
	}
	u1.waitAnsweredSince(t, "link up from the page")
	for _, u := range []*uml{u1, u2, u3} {
		u.release(t)
	}
}

// freeLoopbackAddr is a loopback TCP address no one listens on now.
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// pcapngInterfaces counts a base64 pcapng capture's packets by the name of
// their interface (a port).
func pcapngInterfaces(t *testing.T, b64 string) map[string]int {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	r, err := pcapgo.NewNgReader(bytes.NewReader(b), pcapgo.DefaultNgReaderOptions)
	if err != nil {
		t.Fatalf("not pcapng: %v (%d bytes)", err, len(b))
	}
	for {
		_, ci, err := r.ReadPacketData()
		if err != nil {
			break // the end, or a block cut short where the capture stopped
		}
		iface, err := r.Interface(ci.InterfaceIndex)
		if err != nil {
			t.Fatal(err)
		}
		counts[iface.Name]++
	}
	return counts
}
