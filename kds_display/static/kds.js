// StoreHub KDS page: places server-rendered cards, ages them, pages them, and turns taps and
// bump-bar keys into actions for kds_display. It keeps no state of its own: every (re)connect
// brings every card again, so a reload loses nothing.
(() => {
  "use strict";
  const boot = JSON.parse(document.getElementById("boot").textContent);
  const grid = document.getElementById("grid");
  const banner = document.getElementById("offline");
  const toasts = document.getElementById("toasts");
  const pageSize = boot.page_size;
  const cards = new Map(); // ticket id -> {el, prio, fired, num}
  let order = [];
  let page = 0;
  let selected = -1;
  let socket = null;
  let socketUp = false;
  let meta = { broker: false, hub: false, queued: 0, recall: [], menu: [] };
  const saved = localStorage.getItem("kds-muted");
  let muted = saved === null ? !boot.sound : saved === "1"; // the cook's choice outlives reloads
  let audio = null;
  const painted = [];
  const received = [];
  let beeps = 0;
  window.kds = { painted, received, send, cards, beeps: () => beeps, state: () => ({ order: order.slice(), page, selected, meta }) };

  // -- cards ----------------------------------------------------------------------------------
  function fromHtml(html) {
    const t = document.createElement("template");
    t.innerHTML = html.trim();
    return t.content.firstElementChild;
  }

  function sigs(el) {
    const out = new Map();
    el.querySelectorAll("li.item").forEach((li) => out.set(li.dataset.line, li.dataset.sig));
    return out;
  }

  function upsert(c, fresh) {
    const known = cards.get(c.id);
    if (!c.active || !c.html) {
      if (known) { known.el.remove(); cards.delete(c.id); }
      return false;
    }
    const el = fromHtml(c.html);
    if (known) {
      const before = sigs(known.el);
      el.querySelectorAll("li.item").forEach((li) => {
        if (before.get(li.dataset.line) !== li.dataset.sig) li.classList.add("flash");
      });
      if (known.el.classList.contains("selected")) el.classList.add("selected");
      known.el.replaceWith(el);
    } else {
      if (fresh) el.classList.add("flash-card");
      grid.appendChild(el);
    }
    cards.set(c.id, { el, prio: c.prio, fired: c.fired, num: c.num, slot: "" });
    return !known;
  }

  function applyCards(list, fresh) {
    const added = [];
    for (const c of list) if (upsert(c, fresh)) added.push(c.id);
    layout();
    tick(list.map((c) => c.id));
    if (fresh && added.length) {
      beep();
      requestAnimationFrame(() => setTimeout(() => {
        const at = performance.timeOrigin + performance.now();
        for (const id of added) { performance.mark("kds-painted:" + id); painted.push([id, at]); }
      }, 0));
    }
  }

  function layout() {
    const sign = boot.oldest_first ? 1 : -1;
    const next = Array.from(cards.keys()).sort((a, b) => {
      const x = cards.get(a), y = cards.get(b);
      return (y.prio - x.prio) || sign * (x.fired - y.fired) || (x.num - y.num);
    });
    const same = next.length === order.length && next.every((id, i) => id === order[i]);
    order = next;
    if (!same) {
      // Move only the cards that are out of place (a new ticket is one insertBefore, not a rebuild).
      let node = grid.firstElementChild;
      for (const id of order) {
        const el = cards.get(id).el;
        if (el === node) node = node.nextElementSibling;
        else grid.insertBefore(el, node);
      }
    }
    const pages = Math.max(1, Math.ceil(order.length / pageSize));
    if (page >= pages) page = pages - 1;
    const first = page * pageSize;
    order.forEach((id, i) => {
      const c = cards.get(id);
      const shown = i >= first && i < first + pageSize;
      if (c.el.hidden === shown) c.el.hidden = !shown;
      const slot = shown && i - first < 9 ? String(i - first + 1) : "";
      if (c.slot !== slot) { c.slot = slot; c.el.querySelector(".slot").textContent = slot; }
    });
    setText("page-no", `page ${page + 1}/${pages}`);
    setText("open-count", `${order.length} open`);
    if (selected >= Math.min(pageSize, order.length - first)) select(-1);
  }

  function setText(id, text) {
    const el = document.getElementById(id);
    if (el.textContent !== text) el.textContent = text;
  }

  function visible() { return order.slice(page * pageSize, page * pageSize + pageSize); }

  function select(index) {
    grid.querySelectorAll(".card.selected").forEach((el) => el.classList.remove("selected"));
    const ids = visible();
    selected = index >= 0 && index < ids.length ? index : -1;
    if (selected >= 0) cards.get(ids[selected]).el.classList.add("selected");
  }

  function current() {
    const ids = visible();
    if (!ids.length) return null;
    return cards.get(ids[selected >= 0 ? selected : 0]).el;
  }

  // -- time -----------------------------------------------------------------------------------
  function tick(only) {
    const now = Date.now();
    for (const id of only || visible()) {
      const known = cards.get(id);
      if (!known || known.el.hidden) continue;
      const el = known.el;
      const fired = Number(el.dataset.fired);
      const age = fired ? Math.max(0, Math.floor((now - fired) / 1000)) : 0;
      const text = `${Math.floor(age / 60)}:${String(age % 60).padStart(2, "0")}`;
      const span = el.querySelector(".elapsed");
      if (span.textContent !== text) span.textContent = text;
      const band = age >= Number(el.dataset.late) ? "late" : age >= Number(el.dataset.warn) ? "warn" : "ok";
      if (!el.classList.contains("age-" + band)) {
        el.classList.remove("age-ok", "age-warn", "age-late");
        el.classList.add("age-" + band);
      }
    }
    setText("clock", new Date(now).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }));
  }
  setInterval(() => tick(), 1000);

  // -- side panels and header -----------------------------------------------------------------
  function applyMeta(m) {
    meta = m;
    const down = !socketUp ? "Screen service unreachable — reconnecting…"
      : !m.broker ? `OFFLINE — no connection to the store network${m.refused ? ` (${m.refused})` : ""}. Bumps are kept and sent when it is back.`
      : !m.hub ? "HUB OFFLINE — bumps are kept and sent when the hub is back."
      : "";
    if (banner.hidden !== !down) banner.hidden = !down;
    if (banner.textContent !== down) banner.textContent = down;
    const q = document.getElementById("queued");
    if (q.hidden !== !m.queued) q.hidden = !m.queued;
    setText("queued", `${m.queued} waiting to send`);
    const avg = m.avg_s == null ? null : Math.round(m.avg_s);
    setText("avg", avg == null ? "avg —" : `avg ${Math.floor(avg / 60)}:${String(avg % 60).padStart(2, "0")} (1 h)`);
    list("allday", m.allday, ([label, qty]) => {
      const li = document.createElement("li");
      li.innerHTML = `<span class="n"></span><span class="label"></span>`;
      li.firstChild.textContent = qty;
      li.lastChild.textContent = label;
      return li;
    });
    list("recall", m.recall, (r) => {
      const li = document.createElement("li");
      const b = document.createElement("button");
      b.type = "button";
      b.dataset.tid = r.id;
      b.dataset.rev = r.rev;
      b.textContent = `#${r.num} ${r.where}`.trim();
      li.appendChild(b);
      return li;
    });
    list("menu", m.menu, (item) => {
      const li = document.createElement("li");
      const b = document.createElement("button");
      b.type = "button";
      b.dataset.item = item.id;
      b.dataset.available = item.available ? "1" : "0";
      b.className = item.available ? "on" : "off";
      b.textContent = item.available ? item.name : `86 ${item.name}`;
      li.appendChild(b);
      return li;
    });
    for (const text of m.notices || []) toast(text, "error");
  }

  const listed = new Map();
  function list(id, items, make) {
    const key = JSON.stringify(items || []);
    if (listed.get(id) === key) return; // unchanged: leave the DOM (and the layout) alone
    listed.set(id, key);
    const el = document.getElementById(id);
    const frag = document.createDocumentFragment();
    for (const item of items || []) frag.appendChild(make(item));
    el.replaceChildren(frag);
  }

  function toast(text, kind, action) {
    const el = document.createElement("div");
    el.className = "toast " + (kind || "");
    el.textContent = text;
    if (action) {
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = action.label;
      b.addEventListener("click", () => { action.run(); el.remove(); });
      el.appendChild(b);
    }
    toasts.appendChild(el);
    setTimeout(() => el.remove(), (action ? boot.undo_s : 5) * 1000);
  }

  // -- sound ----------------------------------------------------------------------------------
  function beep() {
    if (muted) return;
    beeps += 1;
    try {
      audio = audio || new AudioContext();
      const osc = audio.createOscillator();
      const gain = audio.createGain();
      osc.frequency.value = 880;
      gain.gain.value = 0.15;
      osc.connect(gain).connect(audio.destination);
      osc.start();
      osc.stop(audio.currentTime + 0.15);
    } catch (e) { /* no audio device: the flash still shows */ }
  }

  function setMuted(value) {
    muted = value;
    localStorage.setItem("kds-muted", muted ? "1" : "0");
    const b = document.getElementById("mute");
    b.textContent = muted ? "Sound off" : "Sound on";
    b.setAttribute("aria-pressed", String(muted));
  }
  document.getElementById("mute").addEventListener("click", () => setMuted(!muted));
  setMuted(muted);

  // -- actions --------------------------------------------------------------------------------
  function send(action) {
    if (socket && socket.readyState === WebSocket.OPEN) {
      socket.send(JSON.stringify(action));
      return true;
    }
    toast("Screen service unreachable: tap again when it is back", "error");
    return false;
  }

  function act(kind, el, lines) {
    if (!el) return;
    const sent = send({ a: kind, t: el.dataset.tid, rev: Number(el.dataset.rev), lines: lines || null });
    if (sent && kind === "bump") {
      toast(`Bumped #${el.dataset.num}`, "", { label: "Undo", run: () => send({ a: "undo" }) });
    }
  }

  grid.addEventListener("click", (ev) => {
    const button = ev.target.closest("button[data-act]");
    const card = ev.target.closest(".card");
    if (!card) return;
    const ids = visible();
    select(ids.indexOf(card.dataset.tid));
    if (!button) return;
    const what = button.dataset.act;
    if (what === "bump-item") act("bump", card, [button.closest("li.item").dataset.line]);
    else act(what, card);
  });

  document.getElementById("recall").addEventListener("click", (ev) => {
    const b = ev.target.closest("button[data-tid]");
    if (b) send({ a: "recall", t: b.dataset.tid, rev: Number(b.dataset.rev) });
  });

  document.getElementById("menu").addEventListener("click", (ev) => {
    const b = ev.target.closest("button[data-item]");
    if (b) send({ a: "86", item: b.dataset.item, available: b.dataset.available !== "1" });
  });

  const keymap = new Map();
  for (const [name, keys] of Object.entries(boot.keys)) for (const k of keys) keymap.set(k, name);

  document.addEventListener("keydown", (ev) => {
    if (ev.target instanceof HTMLInputElement || ev.ctrlKey || ev.altKey || ev.metaKey) return;
    if (/^[1-9]$/.test(ev.key)) { select(Number(ev.key) - 1); ev.preventDefault(); return; }
    const name = keymap.get(ev.key);
    if (!name) return;
    ev.preventDefault();
    const pages = Math.max(1, Math.ceil(order.length / pageSize));
    if (name === "bump") act("bump", current());
    else if (name === "start") act("start", current());
    else if (name === "priority") act("priority", current());
    else if (name === "undo") send({ a: "undo" });
    else if (name === "recall" && meta.recall.length) send({ a: "recall", t: meta.recall[0].id, rev: meta.recall[0].rev });
    else if (name === "next_page") { page = Math.min(pages - 1, page + 1); select(-1); layout(); tick(); }
    else if (name === "prev_page") { page = Math.max(0, page - 1); select(-1); layout(); tick(); }
    else if (name === "mute") setMuted(!muted);
  });

  // -- connection -----------------------------------------------------------------------------
  let retry = 250;
  function connect() {
    socket = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`);
    socket.addEventListener("open", () => { socketUp = true; retry = 250; });
    socket.addEventListener("message", (ev) => {
      const msg = JSON.parse(ev.data);
      if (msg.t === "reset") {
        for (const { el } of cards.values()) el.remove();
        cards.clear();
        grid.replaceChildren();
        order = [];
        applyCards(msg.cards, false);
        applyMeta(msg.meta);
        document.body.dataset.ready = "1";
      } else if (msg.t === "cards") {
        const at = performance.timeOrigin + performance.now();
        for (const c of msg.cards) if (c.active && !cards.has(c.id)) received.push([c.id, at]);
        applyCards(msg.cards, true);
      } else if (msg.t === "meta") {
        applyMeta(msg);
      } else if (msg.t === "error") {
        toast(msg.text, "error");
      }
    });
    socket.addEventListener("close", () => {
      socketUp = false;
      delete document.body.dataset.ready;
      applyMeta(meta);
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 4000);
    });
  }

  // The server rendered the first cards; adopt them until the socket sends the same again.
  grid.querySelectorAll(".card").forEach((el) => {
    cards.set(el.dataset.tid, { el, prio: Number(el.dataset.prio), fired: Number(el.dataset.fired), num: Number(el.dataset.num) });
  });
  layout();
  tick();
  connect();
})();
