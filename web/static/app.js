// The page of a running umlswitch: it reads the control API (through the
// web server, same origin) once a second and draws what it finds. Every
// value from the switch goes into the page as text, never as markup.
'use strict';

const state = {
  token: sessionStorage.getItem('umlswitch-token') || '',
  access: null,
  prev: null,      // last poll: {t, ports: Map(name -> port)}
  rows: new Map(), // port name -> {tr, cells}
  swRows: new Map(),
  captures: new Map(), // key -> running capture
};

function headers(extra) {
  const h = Object.assign({}, extra || {});
  if (state.token) h.Authorization = 'Bearer ' + state.token;
  return h;
}

async function get(path) {
  const r = await fetch(path, { headers: headers() });
  if (!r.ok) throw new Error(path + ': ' + r.status + ' ' + (await r.text()));
  return r.json();
}

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'on') for (const [ev, f] of Object.entries(v)) e.addEventListener(ev, f);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

function svg(tag, attrs, text) {
  const e = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

// si writes n with an SI prefix: 1.23k, 4.5M.
function si(n, unit) {
  const u = ['', 'k', 'M', 'G', 'T'];
  let i = 0;
  while (Math.abs(n) >= 1000 && i < u.length - 1) { n /= 1000; i++; }
  const digits = i === 0 ? (n > 0 && n < 10 ? 1 : 0) : (n < 10 ? 2 : 1);
  return n.toFixed(digits) + (u[i] || '') + (unit ? ' ' + unit : '');
}

function status(msg) { document.getElementById('status').textContent = msg || ''; }

// specKeys are a port's spec as key -> value.
function specKeys(p) {
  const m = new Map();
  for (const kv of (p.spec || '').split(',')) {
    const i = kv.indexOf('=');
    if (i > 0) m.set(kv.slice(0, i), kv.slice(i + 1));
  }
  return m;
}

// keysOf is the part of a port's spec worth showing: its VLAN, policy and
// transport keys, without what other columns show (kind, name, sockets).
function keysOf(p) {
  const out = [];
  for (const [k, v] of specKeys(p)) {
    if (['transport', 'name', 'path', 'peer', 'mode', 'owner', 'group'].includes(k)) continue;
    out.push(k + '=' + v);
  }
  return out.join(',');
}

// short is a path's last element, for a column; the whole path is its title.
function short(s) {
  const i = (s || '').lastIndexOf('/');
  return i >= 0 && i < s.length - 1 ? s.slice(i + 1) : (s || '');
}

function linkOf(p) {
  if (p.state === 'absent') return 'absent';
  return p.link_state || 'up';
}

async function loadAccess() {
  try {
    state.access = await get('/web/access');
  } catch (e) {
    state.access = { capture: false, change: false, why: String(e) };
  }
  const a = state.access;
  const parts = [a.change ? 'changes allowed' : a.capture ? 'captures allowed, read-only' : 'read-only'];
  if (a.why) parts.push('(' + a.why + ')');
  document.getElementById('access-text').textContent = parts.join(' ');
}

async function change(port, set) {
  const r = await fetch('/v1/ports/' + encodeURIComponent(port), {
    method: 'PATCH', headers: headers({ 'Content-Type': 'application/json' }), body: JSON.stringify({ set }),
  });
  if (!r.ok) {
    const e = await r.json().catch(() => ({ error: r.statusText }));
    status('port ' + port + ': ' + (e.error || r.status));
    return;
  }
  status('');
  poll();
}

function portRow(name) {
  let row = state.rows.get(name);
  if (row) return row;
  const cells = {};
  const tr = el('tr', { 'data-port': name });
  for (const c of ['name', 'switch', 'kind', 'peer', 'keys', 'link', 'fps', 'bps', 'frames', 'drops', 'change', 'capture']) {
    cells[c] = el('td', { class: ['fps', 'bps', 'frames'].includes(c) ? 'num' : ['keys', 'drops', 'peer'].includes(c) ? 'wrap' : '' });
    tr.append(cells[c]);
  }
  cells.toggle = el('button', { type: 'button', class: 'link-toggle', on: { click: () => {
    const down = cells.toggle.dataset.state !== 'down';
    change(name, 'link=' + (down ? 'down' : 'up'));
  } } });
  cells.input = el('input', { type: 'text', size: 18, placeholder: 'loss=10%,delay=50ms', class: 'impair' });
  cells.apply = el('button', { type: 'button', on: { click: () => { if (cells.input.value.trim()) change(name, cells.input.value.trim()); } } }, 'Apply');
  cells.change.append(cells.toggle, ' ', cells.input, cells.apply);
  cells.capture.append(captureButton({ port: name }));
  row = { tr, cells };
  state.rows.set(name, row);
  return row;
}

function renderPorts(ports, rates) {
  const tbody = document.querySelector('#ports tbody');
  const seen = new Set();
  const a = state.access || {};
  for (const p of ports) {
    seen.add(p.name);
    const row = portRow(p.name);
    const c = row.cells;
    const r = rates.get(p.name);
    c.name.textContent = p.name;
    c.switch.textContent = p.switch;
    c.kind.textContent = p.kind + (p.listening ? ' listener, ' + (p.clients || 0) + ' clients' : '');
    const peer = p.peer || p.listening || '';
    c.peer.textContent = short(peer);
    c.peer.title = peer;
    c.keys.textContent = keysOf(p);
    const link = linkOf(p);
    c.link.textContent = link;
    c.link.className = link === 'down' ? 'down' : link === 'up' ? 'up' : 'absent';
    c.fps.textContent = r ? si(r.rxf) + ' / ' + si(r.txf) : '';
    c.bps.textContent = r ? si(r.rxb) + ' / ' + si(r.txb) : '';
    c.frames.textContent = p.rx_frames + ' / ' + p.tx_frames;
    c.fps.dataset.rx = r ? r.rxf : 0;
    c.frames.dataset.rx = p.rx_frames;
    c.frames.dataset.tx = p.tx_frames;
    c.drops.textContent = Object.entries(p.drops || {}).map(([k, v]) => k + ' ' + v).join(', ');
    c.toggle.dataset.state = link;
    c.toggle.textContent = link === 'down' ? 'Link up' : 'Link down';
    const mayChange = !!a.change && p.id >= 0;
    c.toggle.disabled = !mayChange;
    c.input.disabled = !mayChange;
    c.apply.disabled = !mayChange;
    c.capture.firstChild.disabled = !a.capture || p.id < 0;
    if (row.tr.parentNode !== tbody) tbody.append(row.tr);
  }
  for (const [name, row] of state.rows) {
    if (!seen.has(name)) { row.tr.remove(); state.rows.delete(name); }
  }
}

function renderSwitches(switches, ports, rates) {
  const tbody = document.querySelector('#switches tbody');
  const seen = new Set();
  for (const s of switches) {
    seen.add(s.name);
    let row = state.swRows.get(s.name);
    if (!row) {
      const cells = {};
      const tr = el('tr', { 'data-switch': s.name });
      for (const c of ['name', 'mode', 'macs', 'ports', 'fps', 'bps', 'capture']) {
        cells[c] = el('td', { class: ['fps', 'bps'].includes(c) ? 'num' : '' });
        tr.append(cells[c]);
      }
      cells.capture.append(captureButton({ switch: s.name }));
      row = { tr, cells };
      state.swRows.set(s.name, row);
    }
    let fps = 0, bps = 0;
    for (const p of ports) {
      const r = rates.get(p.name);
      if (p.switch === s.name && r) { fps += r.rxf; bps += r.rxb; }
    }
    const c = row.cells;
    c.name.textContent = s.name;
    c.mode.textContent = s.hub ? 'hub' : 'switch';
    c.macs.textContent = s.macs + ' / ' + s.mac_table_size + (s.static_macs ? ' (' + s.static_macs + ' static)' : '');
    c.ports.textContent = s.ports;
    c.fps.textContent = si(fps);
    c.bps.textContent = si(bps);
    c.capture.firstChild.disabled = !(state.access || {}).capture;
    if (row.tr.parentNode !== tbody) tbody.append(row.tr);
  }
  for (const [name, row] of state.swRows) {
    if (!seen.has(name)) { row.tr.remove(); state.swRows.delete(name); }
  }
}

// renderFDB lists the MAC tables, with the lab machine of each address
// where the drawing's graph knows it.
function renderFDB(fdb, graph) {
  const machine = new Map();
  for (const sw of graph.switches) {
    for (const p of sw.ports) {
      for (const h of p.hosts || []) {
        const m = h.machine ? h.machine + ' ' + (h.interface || '') : p.machine || '';
        if (m) machine.set(sw.name + ' ' + h.mac, m.trim());
      }
    }
  }
  const tbody = document.querySelector('#fdb tbody');
  const rows = fdb.slice(0, maxMACRows).map(m => el('tr', {},
    el('td', {}, m.switch), el('td', {}, m.mac), el('td', {}, machine.get(m.switch + ' ' + m.mac) || ''),
    el('td', {}, m.vlan || ''), el('td', {}, m.port || (m.remote ? 'remote ' + (m.vtep || '') : '')),
    el('td', { class: 'num' }, m.static ? 'static' : m.remote ? 'remote' : m.age_s.toFixed(0) + ' s')));
  if (fdb.length > maxMACRows) {
    rows.push(el('tr', {}, el('td', { colspan: 6 }, (fdb.length - maxMACRows) + ' more (umlswitch ctl fdb lists them all)')));
  }
  tbody.replaceChildren(...rows);
}

// maxMACRows bounds the MAC table the page lists: an EVPN lab's tables
// hold 100,000 addresses.
const maxMACRows = 500;

// renderTopology draws the graph GET /web/topology answers (the one
// `ctl topology` writes): the switches in a row, each port below its
// switch, what is behind each port below it (a lab machine, the MACs
// learned there, a host interface, a tunnel's remote end), and the links
// between switches as curves joining their ports.
// nodesPerPort is how many of what is behind a port the drawing shows;
// the rest are counted.
const nodesPerPort = 3;

function renderTopology(graph, ports) {
  const g = document.getElementById('topology');
  const colW = 130, portY = 150, nodeY = 215;
  const shown = sw => sw.ports.filter(p => !p.listening);
  const cols = Math.max(1, graph.switches.reduce((n, sw) => n + Math.max(shown(sw).length, 1), 0));
  g.setAttribute('viewBox', '0 0 ' + (cols * colW + 40) + ' 320');
  g.replaceChildren();
  const down = (swName, port) => {
    const p = ports.get(port);
    return (p && p.switch === swName && linkOf(p) === 'down');
  };
  const portAt = new Map(); // "s0/name" -> x
  const swAt = new Map();
  let x = 20;
  for (const sw of graph.switches) {
    const own = shown(sw);
    swAt.set(sw.id, x + Math.max(own.length, 1) * colW / 2);
    own.forEach((p, i) => portAt.set(sw.id + '/' + p.name, x + i * colW + colW / 2));
    x += Math.max(own.length, 1) * colW;
  }
  const nodes = new Map(graph.nodes.map(n => [n.id, n]));
  const below = new Map(); // port key -> node labels drawn under it
  const placed = new Map(); // node id -> [x, y] where it is drawn
  const layer = { lines: svg('g'), boxes: svg('g') };
  for (const l of graph.links) {
    const a = l.a.switch + '/' + l.a.port;
    const ax = portAt.get(a);
    if (ax === undefined) continue;
    const isDown = down(switchName(graph, l.a.switch), l.a.port) || (l.b.port && down(switchName(graph, l.b.switch), l.b.port));
    if (l.b.node) {
      const n = nodes.get(l.b.node);
      if (!n) continue;
      let at = placed.get(n.id);
      if (!at) {
        const k = (below.get(a) || 0);
        below.set(a, k + 1);
        if (k >= nodesPerPort) continue; // counted, drawn as "+N more" below
        at = [ax, nodeY + 22 * k];
        placed.set(n.id, at);
        const box = svg('g', { class: n.kind === 'machine' || n.kind === 'mac' ? 'machine' : 'tunnel', 'data-node': n.label });
        box.append(svg('rect', { x: at[0] - colW / 2 + 6, y: at[1], width: colW - 12, height: 18, rx: 4 }),
          svg('text', { x: at[0] - colW / 2 + 12, y: at[1] + 13 }, n.label.split('\n')[0]));
        layer.boxes.append(box);
      }
      layer.lines.append(svg('line', { x1: ax, y1: portY + 7, x2: at[0], y2: at[1], class: isDown ? 'linkdown' : '' }));
    } else if (l.b.switch) {
      const bx = portAt.get(l.b.switch + '/' + l.b.port);
      if (bx === undefined) continue;
      layer.lines.append(svg('path', { d: `M ${ax} ${portY + 7} C ${ax} ${portY + 50}, ${bx} ${portY + 50}, ${bx} ${portY + 7}`,
        class: 'join' + (isDown ? ' linkdown' : ''), 'data-join': l.a.port + ' ' + l.b.port }));
      layer.boxes.append(svg('text', { x: (ax + bx) / 2 - 15, y: portY + 48 }, l.kind));
    }
  }
  for (const [a, n] of below) {
    if (n <= nodesPerPort) continue;
    const ax = portAt.get(a), y = nodeY + 22 * nodesPerPort;
    const box = svg('g', { class: 'machine' });
    box.append(svg('rect', { x: ax - colW / 2 + 6, y, width: colW - 12, height: 18, rx: 4 }),
      svg('text', { x: ax - colW / 2 + 12, y: y + 13 }, '+' + (n - nodesPerPort) + ' more'));
    layer.lines.append(svg('line', { x1: ax, y1: portY + 7, x2: ax, y2: y }));
    layer.boxes.append(box);
  }
  g.append(layer.lines);
  for (const sw of graph.switches) {
    for (const p of shown(sw)) {
      const px = portAt.get(sw.id + '/' + p.name);
      const isDown = down(sw.name, p.name);
      g.append(svg('line', { x1: swAt.get(sw.id), y1: 60, x2: px, y2: portY, class: isDown ? 'linkdown' : '' }));
      const port = svg('g', { class: 'port' + (isDown ? ' linkdown' : ''), 'data-port': p.name });
      port.append(svg('circle', { cx: px, cy: portY, r: 7 }), svg('text', { x: px + 10, y: portY - 4 }, p.name));
      g.append(port);
    }
    const cx = swAt.get(sw.id);
    const box = svg('g', { class: 'switch', 'data-switch': sw.name });
    box.append(svg('rect', { x: cx - 55, y: 30, width: 110, height: 30, rx: 5 }),
      svg('text', { x: cx - 48, y: 50 }, sw.name + (sw.hub ? ' (hub)' : '')));
    g.append(box);
  }
  g.append(layer.boxes);
}

function switchName(graph, id) {
  const sw = graph.switches.find(s => s.id === id);
  return sw ? sw.name : '';
}

async function poll() {
  try {
    // The MAC table and the drawing's graph grow with the addresses: a
    // lab with thousands is read every tenth poll only.
    state.polls = (state.polls || 0) + 1;
    const big = state.fdb && state.fdb.length > 2000;
    const tables = !big || state.polls % 10 === 1 ? Promise.all([get('/v1/fdb'), get('/web/topology')]) :
      Promise.resolve([state.fdb, state.graph]);
    const [switches, ports, [fdb, graph]] = await Promise.all([get('/v1/switches'), get('/v1/ports'), tables]);
    state.fdb = fdb;
    state.graph = graph;
    const now = performance.now();
    const byName = new Map(ports.map(p => [p.name, p]));
    const rates = new Map();
    if (state.prev) {
      const dt = (now - state.prev.t) / 1000;
      for (const p of ports) {
        const q = state.prev.ports.get(p.name);
        if (!q || dt <= 0) continue;
        rates.set(p.name, {
          rxf: Math.max(0, p.rx_frames - q.rx_frames) / dt, txf: Math.max(0, p.tx_frames - q.tx_frames) / dt,
          rxb: 8 * Math.max(0, p.rx_bytes - q.rx_bytes) / dt, txb: 8 * Math.max(0, p.tx_bytes - q.tx_bytes) / dt,
        });
      }
    }
    state.prev = { t: now, ports: byName };
    renderSwitches(switches, ports, rates);
    renderPorts(ports, rates);
    renderFDB(fdb, graph);
    renderTopology(graph, byName);
    document.body.dataset.polls = String(Number(document.body.dataset.polls || 0) + 1);
  } catch (e) {
    status(String(e));
  }
}

function addEvent(ev) {
  const list = document.getElementById('events');
  const t = ev.time ? new Date(ev.time).toLocaleTimeString() : '';
  const what = [ev.type, ev.switch, ev.port, ev.kind, ev.peer, ev.mac, ev.detail, ev.error].filter(Boolean).join(' ');
  list.prepend(el('li', { 'data-type': ev.type || '' }, t + ' ' + what));
  while (list.children.length > 100) list.lastChild.remove();
}

async function followEvents() {
  try {
    for (const ev of await get('/web/events')) addEvent(ev);
  } catch (e) { status(String(e)); }
  for (;;) {
    try {
      const r = await fetch('/v1/events', { headers: headers() });
      const reader = r.body.getReader();
      const dec = new TextDecoder();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += dec.decode(value, { stream: true });
        let nl;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl).trim();
          buf = buf.slice(nl + 1);
          if (line) { try { addEvent(JSON.parse(line)); } catch (_) { /* a line cut short */ } }
        }
      }
    } catch (_) { /* the switch restarted: try again */ }
    await new Promise(res => setTimeout(res, 2000));
  }
}

// captureButton starts a capture of a switch, or of one port, and saves
// it as pcapng when clicked again (or after the seconds the page asks for).
function captureButton(what) {
  const b = el('button', { type: 'button', class: 'capture' }, 'Capture');
  b.addEventListener('click', () => {
    const key = JSON.stringify(what);
    const running = state.captures.get(key);
    if (running) { running.stop(); return; }
    startCapture(what, b, key);
  });
  return b;
}

async function startCapture(what, button, key) {
  let sw = what.switch;
  if (what.port) {
    const p = state.prev && state.prev.ports.get(what.port);
    sw = p ? p.switch : '';
  }
  const ctl = new AbortController();
  const chunks = [];
  let stopped = false;
  const stop = () => { stopped = true; ctl.abort(); };
  state.captures.set(key, { stop });
  button.textContent = 'Stop and save';
  const seconds = Number(document.getElementById('capture-seconds').value);
  if (seconds > 0) setTimeout(stop, seconds * 1000);
  try {
    const q = 'switch=' + encodeURIComponent(sw) + (what.port ? '&port=' + encodeURIComponent(what.port) : '');
    const r = await fetch('/v1/capture?' + q, { headers: headers(), signal: ctl.signal });
    if (!r.ok) {
      const e = await r.json().catch(() => ({ error: r.statusText }));
      throw new Error(e.error || r.status);
    }
    const reader = r.body.getReader();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      chunks.push(value);
    }
  } catch (e) {
    if (!stopped) status('capture: ' + e.message);
  }
  state.captures.delete(key);
  button.textContent = 'Capture';
  const bytes = concat(chunks);
  if (bytes.length === 0) return;
  const a = el('a', { href: URL.createObjectURL(new Blob([bytes], { type: 'application/vnd.tcpdump.pcapng' })),
    download: (what.port || what.switch) + '-' + new Date().toISOString().replace(/[:.]/g, '-') + '.pcapng' });
  document.body.append(a);
  a.click();
  a.remove();
}

function concat(chunks) {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let off = 0;
  for (const c of chunks) { out.set(c, off); off += c.length; }
  return out;
}

function init() {
  const m = /(?:^#|&)token=([0-9a-f]+)/.exec(location.hash);
  if (m) {
    state.token = m[1];
    sessionStorage.setItem('umlswitch-token', state.token);
    history.replaceState(null, '', location.pathname);
  }
  document.getElementById('token-set').addEventListener('click', () => {
    state.token = document.getElementById('token').value.trim();
    sessionStorage.setItem('umlswitch-token', state.token);
    document.getElementById('token').value = '';
    loadAccess().then(poll);
  });
  get('/v1/info').then(i => { document.getElementById('pid').textContent = 'pid ' + i.pid; }).catch(() => {});
  loadAccess().then(poll);
  setInterval(poll, 1000);
  followEvents();
}

init();
