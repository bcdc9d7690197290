// StoreHub manager page: JSON forms with CSRF, one-click actions, live regions over SSE, order filters.
"use strict";
(function () {
  const csrf = () => document.querySelector('meta[name="csrf"]').content;
  const flash = document.getElementById("flash");
  window.__live = [];

  function say(text, isError) {
    if (!flash) return;
    flash.hidden = false;
    flash.textContent = text;
    flash.className = isError ? "flash error" : "flash";
    flash.setAttribute("role", isError ? "alert" : "status");
  }

  function cents(text) {
    const m = String(text).trim().replace(",", ".").match(/^(\d+)(?:\.(\d{0,2}))?$/);
    if (!m) return NaN;
    return parseInt(m[1], 10) * 100 + parseInt((m[2] || "").padEnd(2, "0") || "0", 10);
  }

  function formJson(form) {
    const body = {};
    for (const el of form.elements) {
      if (!el.name || el.disabled) continue;
      let v = el.value;
      if (el.hasAttribute("data-optional") && v === "") continue;
      if (el.hasAttribute("data-money")) {
        v = cents(v);
        if (Number.isNaN(v)) throw new Error("Enter an amount like 12.50 in " + (el.labels[0] ? el.labels[0].textContent : el.name));
      } else if (el.hasAttribute("data-bool")) v = v === "true";
      else if (el.hasAttribute("data-list")) v = v.split(",").map((x) => x.trim()).filter(Boolean);
      else if (el.type === "number") v = v === "" ? null : parseInt(v, 10);
      body[el.name] = v;
    }
    return body;
  }

  async function post(url, body, el) {
    const headers = { "Content-Type": "application/json", "X-CSRF-Token": csrf(), Accept: "application/json" };
    const res = await fetch(url, { method: "POST", headers, body: JSON.stringify(body || {}), credentials: "same-origin" });
    let data = {};
    try { data = await res.json(); } catch (e) { data = {}; }
    if (!res.ok) {
      const err = (data && data.error) || { message: res.statusText, code: res.status };
      say(err.message + " (" + err.code + ")", true);
      if (res.status === 401 && url !== "/api/login") location.href = "/login";
      return;
    }
    const next = el.getAttribute("data-next");
    const show = el.getAttribute("data-show");
    if (show) {
      const box = document.querySelector(show);
      box.textContent = data.ok === false
        ? "Chain BROKEN at seq " + data.first_bad_seq + ": " + data.reason
        : (data.ok ? "Chain verified: " + data.entries + " entries, head seq " + data.head_seq + " (" + data.took_ms + " ms)" : JSON.stringify(data));
      box.className = data.ok === false ? "result bad" : "result ok";
    }
    say(el.getAttribute("data-done") || "Done", false);
    if (next) location.href = next.replace(/\{(\w+)\}/g, (_, k) => encodeURIComponent(data[k] || ""));
    else if (el.hasAttribute("data-reload")) location.reload();
  }

  document.addEventListener("submit", (ev) => {
    const form = ev.target.closest("form[data-api]");
    if (!form) return;
    ev.preventDefault();
    const question = form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) return;
    let body;
    try { body = formJson(form); } catch (e) { say(e.message, true); return; }
    post(form.getAttribute("data-api"), body, form).catch((e) => say("The hub did not answer: " + e.message, true));
  });

  document.addEventListener("click", (ev) => {
    const button = ev.target.closest("[data-post]");
    if (button) {
      const question = button.getAttribute("data-confirm");
      if (question && !window.confirm(question)) return;
      const body = button.getAttribute("data-body");
      post(button.getAttribute("data-post"), body ? JSON.parse(body) : {}, button)
        .catch((e) => say("The hub did not answer: " + e.message, true));
      return;
    }
    if (ev.target.closest("[data-print]")) { window.print(); return; }
    const chip = ev.target.closest(".chip[data-bucket]");
    if (chip) {
      for (const c of document.querySelectorAll(".chip[data-bucket]")) c.setAttribute("aria-pressed", String(c === chip));
      applyFilter();
    }
  });

  function applyFilter() {
    const pressed = document.querySelector('.chip[aria-pressed="true"]');
    const bucket = pressed ? pressed.getAttribute("data-bucket") : "";
    const search = document.getElementById("order-search");
    const q = search ? search.value.trim().toLowerCase() : "";
    for (const row of document.querySelectorAll("tr[data-bucket]")) {
      const hit = (!bucket || row.dataset.bucket === bucket) && (!q || row.dataset.search.includes(q));
      row.hidden = !hit;
    }
  }
  const search = document.getElementById("order-search");
  if (search) search.addEventListener("input", applyFilter);

  // Live regions: fresh server-rendered HTML after every engine commit.
  const pending = {};
  function swap(name, html) {
    const el = document.getElementById("region-" + name);
    if (!el) return;
    const active = document.activeElement;
    if (el.contains(active) && /^(INPUT|SELECT|TEXTAREA)$/.test(active.tagName) && active.type !== "hidden") {
      pending[name] = html;  // never pull a field from under the manager's fingers
      return;
    }
    const keep = active && el.contains(active) && active.getAttribute("data-post");
    el.innerHTML = html;
    if (keep) {  // keyboard users keep their place after a live refresh
      const again = el.querySelector('[data-post="' + CSS.escape(keep) + '"]');
      if (again) again.focus();
    }
  }
  document.addEventListener("focusout", () => {
    setTimeout(() => {
      for (const name of Object.keys(pending)) {
        const el = document.getElementById("region-" + name);
        const a = document.activeElement;
        if (el && !(el.contains(a) && /^(INPUT|SELECT|TEXTAREA)$/.test(a.tagName))) { el.innerHTML = pending[name]; delete pending[name]; }
      }
      applyFilter();
    }, 0);
  });

  const regions = document.body.dataset.live;
  if (regions && document.querySelector('meta[name="csrf"]').content && !document.querySelector("form[data-api='/api/login']")) {
    const source = new EventSource("/live?regions=" + encodeURIComponent(regions));
    source.onmessage = (ev) => {
      const msg = JSON.parse(ev.data);
      if (!msg.html) return;
      for (const [name, html] of Object.entries(msg.html)) swap(name, html);
      applyFilter();
      document.body.dataset.seq = msg.seq;
      if (msg.committed_ms === null) return;  // the full refresh sent on (re)connect
      const applied = performance.timeOrigin + performance.now();
      window.__live.push({ seq: msg.seq, committed_ms: msg.committed_ms, applied_ms: applied });
      if (window.__live.length > 1000) window.__live.shift();
    };
    source.addEventListener("logout", () => { source.close(); location.href = "/login"; });
    document.body.dataset.liveState = "connecting";
    source.onopen = () => { document.body.dataset.liveState = "open"; };
    source.onerror = () => {
      document.body.dataset.liveState = "retrying";
      // A restarted hub forgot the session: go to the login page instead of retrying for ever.
      fetch("/api/me", { credentials: "same-origin" }).then((r) => { if (r.status === 401) location.href = "/login"; })
        .catch(() => {});
    };
  }
})();
