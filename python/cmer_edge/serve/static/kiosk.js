// cmer_edge display page: WebSocket events -> current utterance, probability bars, transcript, timeline.
// Protocol (cmer_edge/serve/hub.py): "hello" {instance, labels, latest_seq}, then "event" {seq,
// created_unix_ms, event} and "status" messages. Events of one utterance share utterance_id: a
// "provisional" one updates it, the "final" one replaces it (a late provisional never overrides a final).
// Missed events (reconnects) are fetched from /events?since=N; a new server instance resets the page.
"use strict";
(() => {
  const TIMELINE_S = 180, MAX_ROWS = 400, MAX_LATENCIES = 10000;
  const KNOWN = ["neutral", "joy", "surprise", "anger", "sadness", "disgust", "fear"];
  const FALLBACK = ["#e0e0e0", "#f78fb3", "#63cdda", "#cf6a87", "#c8d6e5"];
  const $ = (id) => document.getElementById(id);
  const state = {
    instance: null, labels: [], lastSeq: 0, utterances: new Map(), order: [], latencies: [],
    conn: "connecting", reconnects: 0, streamS: 0,
  };
  window.cmerKiosk = state;  // for tests and the browser console
  const token = new URLSearchParams(location.search).get("token");
  const withToken = (path) => token ? `${path}${path.includes("?") ? "&" : "?"}token=${encodeURIComponent(token)}` : path;
  const css = getComputedStyle(document.documentElement);

  function colour(label) {
    if (KNOWN.includes(label)) return css.getPropertyValue(`--${label}`).trim();
    const i = Math.max(0, state.labels.indexOf(label));
    return FALLBACK[i % FALLBACK.length];
  }
  function clock(s) {
    const m = Math.floor(Math.max(0, s) / 60), r = Math.max(0, s) - 60 * m;
    return `${String(m).padStart(2, "0")}:${r.toFixed(1).padStart(4, "0")}`;
  }
  const pct = (p) => `${Math.round(100 * p)}%`;

  // -- connection ------------------------------------------------------------------------------
  function setConn(s, text) {
    state.conn = s;
    $("conn").dataset.state = s;
    $("conn-text").textContent = text;
  }
  let backoffMs = 500;
  function connect() {
    setConn("connecting", state.reconnects ? "reconnecting…" : "connecting…");
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    const ws = new WebSocket(scheme + location.host + withToken("/ws"));
    let ready = false, pending = [];
    ws.onopen = () => { backoffMs = 500; setConn("open", "live"); };
    ws.onmessage = (m) => {
      const arrived = Date.now();
      const msg = JSON.parse(m.data);
      if (msg.type === "event") {
        state.latencies.push(arrived - msg.created_unix_ms);
        if (state.latencies.length > MAX_LATENCIES) state.latencies.shift();
        if (ready) applyEvent(msg); else pending.push(msg);
      } else if (msg.type === "status") {
        applyStatus(msg);
      } else if (msg.type === "hello") {
        hello(msg).finally(() => { ready = true; pending.forEach(applyEvent); pending = []; });
      }
    };
    ws.onclose = () => {
      state.reconnects += 1;
      const wait = backoffMs;
      backoffMs = Math.min(5000, backoffMs * 2);
      setConn("closed", `offline, retrying in ${Math.ceil(wait / 1000)} s`);
      setTimeout(connect, wait);
    };
  }

  async function hello(msg) {
    if (state.instance !== msg.instance) reset(msg.instance);
    if (msg.labels.join() !== state.labels.join()) { state.labels = msg.labels; buildBars(); }
    if (msg.latest_seq > state.lastSeq) {  // what happened while we were away (or before we came)
      const r = await fetch(withToken(`/events?since=${state.lastSeq}`), { cache: "no-store" });
      if (r.ok) {
        const body = await r.json();
        if (body.instance === state.instance) body.events.forEach(applyEvent);
      }
    }
  }

  function reset(instance) {
    state.instance = instance;
    state.lastSeq = 0;
    state.utterances.clear();
    state.order = [];
    $("transcript").replaceChildren();
    $("current").dataset.utteranceId = "";
    $("current-label").textContent = "waiting for speech";
    $("current-confidence").textContent = "";
    $("current-text").textContent = "";
    drawTimeline();
  }

  // -- events ------------------------------------------------------------------------------------
  function applyEvent(msg) {
    if (msg.seq <= state.lastSeq) return;
    state.lastSeq = msg.seq;
    const e = msg.event, id = e.utterance_id, stage = e.stage || "final";
    const old = state.utterances.get(id);
    if (old && old.stage === "final" && stage !== "final") return;
    state.utterances.set(id, Object.assign({}, e, { stage, seq: msg.seq }));
    if (!old) {
      state.order.push(id);
      while (state.order.length > MAX_ROWS) {
        const gone = state.order.shift();
        state.utterances.delete(gone);
        document.querySelector(`#transcript li[data-utterance-id="${gone}"]`)?.remove();
      }
    }
    renderRow(id);
    if (id >= Math.max(...state.order)) renderCurrent(id);
    drawTimeline();
  }

  function renderRow(id) {
    const u = state.utterances.get(id), list = $("transcript");
    let li = list.querySelector(`li[data-utterance-id="${id}"]`);
    if (!li) {
      li = document.createElement("li");
      li.dataset.utteranceId = id;
      for (const cls of ["t-time", "chip", "t-text"]) {
        const span = document.createElement("span");
        span.className = cls;
        li.append(span);
      }
      const stick = list.scrollTop + list.clientHeight >= list.scrollHeight - 8;
      list.append(li);
      if (stick) list.scrollTop = list.scrollHeight;
    }
    Object.assign(li.dataset, { label: u.label || "", stage: u.stage, seq: u.seq });
    const [time, chip, text] = li.children;
    time.textContent = clock(u.start_s);
    chip.textContent = u.label || "none";
    chip.style.background = u.label ? colour(u.label) : "var(--line)";
    li.style.borderLeftColor = u.label ? colour(u.label) : "var(--line)";
    text.textContent = u.text || "(audio only)";
    li.title = u.label ? `${u.label} ${pct(u.confidence)}${u.stage === "provisional" ? " (provisional)" : ""}` : "";
  }

  function renderCurrent(id) {
    const u = state.utterances.get(id), box = $("current");
    Object.assign(box.dataset, { utteranceId: id, stage: u.stage, label: u.label || "" });
    box.style.borderLeftColor = u.label ? colour(u.label) : "var(--line)";
    $("current-label").textContent = u.label || "no prediction";
    $("current-label").style.color = u.label ? colour(u.label) : "";
    $("current-confidence").textContent = u.label ? pct(u.confidence) : "";
    $("current-stage").textContent = u.stage === "provisional" ? "provisional" : "";
    $("current-text").textContent = u.text || "(audio only)";
    for (const bar of $("bars").children) {
      const p = (u.probs || {})[bar.dataset.label] || 0;
      bar.dataset.prob = p;
      bar.dataset.top = String(bar.dataset.label === u.label);
      bar.querySelector(".bar-fill").style.width = `${(100 * p).toFixed(2)}%`;
      bar.querySelector(".bar-value").textContent = pct(p);
      bar.querySelector(".bar-label").classList.toggle("top", bar.dataset.label === u.label);
    }
  }

  function buildBars() {
    const bars = $("bars");
    bars.replaceChildren();
    for (const label of state.labels) {
      const bar = document.createElement("div");
      bar.className = "bar";
      bar.style.display = "contents";
      bar.dataset.label = label;
      bar.dataset.prob = "0";
      bar.innerHTML = '<span class="bar-label"></span><div class="bar-track"><div class="bar-fill"></div></div>' +
        '<span class="bar-value">0%</span>';
      bar.querySelector(".bar-label").textContent = label;
      bar.querySelector(".bar-fill").style.background = colour(label);
      bars.append(bar);
    }
  }

  // -- status ------------------------------------------------------------------------------------
  function applyStatus(s) {
    const speech = !!(s.input && s.input.speech);
    $("vad").dataset.speech = String(speech);
    $("vad-text").textContent = speech ? "speech" : "silence";
    if (s.input) {
      const db = s.input.rms_dbfs;
      $("level-fill").style.width = `${Math.max(0, Math.min(100, (db + 60) / 60 * 100))}%`;
      $("level-text").textContent = db <= -100 ? "– dB" : `${db.toFixed(0)} dBFS`;
      state.streamS = Math.max(state.streamS, s.input.stream_s || 0);
    }
    const r = s.recognizer || {}, src = s.source || {}, srv = s.server || {};
    $("stats").textContent = `${r.state || ""} · queue ${r.queue_depth ?? 0} · dropped ${r.dropped_utterances ?? 0} ` +
      `utt., ${src.dropped_blocks ?? 0} blocks · clients ${srv.clients ?? 0} (${srv.dropped_clients ?? 0} dropped)`;
    if (s.backends) {
      const b = s.backends;
      $("backends").textContent = `audio ${b.audio} · text ${b.text} · asr ${b.asr} · head ${b.head}`;
    }
    if (state.latencies.length) {
      const sorted = state.latencies.slice(-200).sort((a, b) => a - b);
      $("latency").textContent = `delivery p50 ${sorted[Math.floor(sorted.length / 2)].toFixed(0)} ms`;
    }
  }

  // -- timeline: one lane per emotion (labelled), a block per utterance, opacity = confidence -------
  function drawTimeline() {
    const canvas = $("timeline"), dpr = window.devicePixelRatio || 1;
    const w = canvas.clientWidth, h = canvas.clientHeight;
    if (!w || !h) return;
    if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
      canvas.width = Math.round(w * dpr);
      canvas.height = Math.round(h * dpr);
    }
    const g = canvas.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    const labels = state.labels.length ? state.labels : KNOWN, left = 96, bottom = 18;
    const lane = (h - bottom) / labels.length;
    let end = state.streamS;
    for (const u of state.utterances.values()) end = Math.max(end, u.end_s);
    const span = Math.min(TIMELINE_S, Math.max(60, end)), start = Math.max(0, end - span);
    const x = (t) => left + (w - left - 6) * (t - start) / span, step = span > 60 ? 30 : 10;
    g.font = `${Math.min(15, lane * 0.8)}px sans-serif`;
    g.textBaseline = "middle";
    labels.forEach((label, i) => {
      g.fillStyle = i % 2 ? "#161b21" : "#1e252d";
      g.fillRect(left, i * lane, w - left, lane);
      g.fillStyle = colour(label);
      g.textAlign = "right";
      g.fillText(label, left - 8, (i + 0.5) * lane);
    });
    g.fillStyle = "#9aa5b1";
    g.textAlign = "center";
    for (let t = Math.ceil(start / step) * step; t <= start + span; t += step) {
      g.fillRect(x(t), 0, 1, h - bottom);
      g.textAlign = x(t) + 24 > w ? "right" : "center";
      g.fillText(clock(t).slice(0, 5), Math.min(x(t), w - 2), h - bottom / 2);
    }
    for (const u of state.utterances.values()) {
      const i = labels.indexOf(u.label);
      if (i < 0 || u.end_s < start) continue;
      g.globalAlpha = 0.35 + 0.65 * u.confidence;
      g.fillStyle = colour(u.label);
      const x0 = Math.max(left, x(u.start_s));
      g.fillRect(x0, i * lane + 2, Math.max(3, x(u.end_s) - x0), lane - 4);
      if (u.stage === "provisional") { g.strokeStyle = "#f1f3f5"; g.strokeRect(x0, i * lane + 2, Math.max(3, x(u.end_s) - x0), lane - 4); }
      g.globalAlpha = 1;
    }
    $("timeline-span").textContent = `stream time, the last ${Math.round(span / 60)} min` +
      " · one lane per emotion, opacity = confidence";
  }

  window.addEventListener("resize", drawTimeline);
  setInterval(drawTimeline, 1000);
  state.labels = KNOWN.slice();
  buildBars();
  drawTimeline();
  connect();
})();
