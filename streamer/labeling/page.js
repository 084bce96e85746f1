"use strict";
// The labelling page: keys edit through the server (which writes labels.csv after every change);
// the page only shows what the server answers. window.labeler is also read by the tests.
const L = window.labeler = { ready: false, loop: 0, frame: 0, frames: 0, fps: 30, playing: false,
                             runs: [], scores: [], present: [], done: 0, pending: 0, edits: 0,
                             saved: true, message: "", shown: -1 };
let state = null, queue = Promise.resolve(), scoreTimer = null;
const $ = (id) => document.getElementById(id);
const img = $("frame"), timeline = $("timeline");
const ROW = 14, LEFT = 72;

async function api(path, body) {
  const opts = body ? { method: "POST", body: JSON.stringify(body),
                        headers: { "Content-Type": "application/json" } } : {};
  const r = await fetch(path, opts);
  const text = await r.text();
  if (!r.ok) throw new Error(text.trim() || r.statusText);
  return JSON.parse(text);
}

function say(text) { L.message = text; $("message").textContent = text; }

function labelAt(frame) {
  for (const [a, b, v] of L.runs) if (a <= frame && frame <= b) return v;
  return null;
}

function setLabels(answer) {
  if (answer.loop !== L.loop) return;
  L.runs = answer.runs; L.saved = answer.saved; L.undo = answer.undo; L.writes = answer.writes;
  const s = $("saved");
  if (state.readonly) { s.textContent = "read-only"; s.className = ""; }
  else if (answer.saved) { s.textContent = answer.writes ? `saved (${answer.writes} writes)` : "no changes yet"; s.className = "ok"; }
  else { s.textContent = "NOT SAVED: " + answer.save_error; s.className = "bad"; }
  draw();
}

function edit(body) {  // in key order, each with the loop and frame of its key press
  L.pending++;
  queue = queue.then(() => api("api/edit", body)).then((answer) => {
    L.edits++; say("");
    if (answer.loop !== L.loop && body.op === "undo") {  // the change undone was in another loop
      openLoop(answer.loop); say(`undid a change in ${state.loops[answer.loop].name}`);
    }
    setLabels(answer);
  }).catch((e) => say(e.message)).finally(() => { L.pending--; });
}

function showFrame() {
  $("frameno").textContent = `${L.frame} / ${L.frames - 1}`;
  img.src = `frame.jpg?loop=${L.loop}&frame=${L.frame}`;
  draw();
}

img.onload = () => { L.shown = Number(new URL(img.src).searchParams.get("frame")); };

function seek(frame) {
  L.frame = Math.max(0, Math.min(L.frames - 1, frame));
  showFrame();
}

function openLoop(index) {  // at once, so keys pressed next act on this loop
  L.playing = false; L.loop = index;
  const info = state.loops[index];
  L.frames = info.frames; L.fps = info.fps || 30; L.frame = 0;
  L.runs = []; L.scores = []; L.present = []; L.done = 0;
  $("loopname").textContent = info.name;
  $("loopno").textContent = `${index + 1} of ${state.loops.length}`;
  showFrame();
  L.pending++;  // through the edit queue: its answer never overtakes an edit's
  queue = queue.then(() => api(`api/labels?loop=${index}`)).then(setLabels)
    .catch((e) => say(e.message)).finally(() => { L.pending--; L.ready = true; });
  pollScores();
}

async function pollScores() {
  clearTimeout(scoreTimer);
  const loop = L.loop;
  try {
    const s = await api(`api/scores?loop=${loop}&from=${L.scores.length}`);
    if (loop !== L.loop) return;
    L.scores.push(...s.scores); L.present.push(...s.present); L.done = L.scores.length;
    $("progress").textContent = s.error ? `model stopped: ${s.error}` :
      (s.done < s.total ? `model scoring: ${s.done} / ${s.total} frames` : "model: every frame scored");
    draw();
    if (!s.error && L.done < s.total) scoreTimer = setTimeout(pollScores, L.done < s.done ? 0 : 500);
  } catch (e) { say(e.message); scoreTimer = setTimeout(pollScores, 2000); }
}

function panel() {
  const label = labelAt(L.frame), score = L.scores[L.frame], present = L.present[L.frame];
  state.classes.forEach((c, i) => {
    const st = $("state-" + i), on = label ? label[i] === 1 : null;
    st.textContent = on === null ? "–" : (on ? "on" : "off");
    st.className = "state " + (on === null ? "none" : (on ? "on" : "off"));
    const v = score ? score[i] : null;
    $("fill-" + i).style.width = v === null ? "0" : (100 * v) + "%";
    $("score-" + i).textContent = v === null ? "" : v.toFixed(2);
  });
  const names = present ? state.classes.filter((c, i) => present[i]).map((c) => c.name) : null;
  $("suggestion").textContent = "model suggests: " + (names === null ? "- (not scored yet)" :
    (names.length ? names.join(", ") : "nothing in view"));
}

function spans(keep) {  // runs merged where they touch, so a row has no seams
  const out = [];
  for (const [a, b, v] of L.runs) {
    if (!keep(v)) continue;
    if (out.length && out[out.length - 1][1] === a - 1) out[out.length - 1][1] = b;
    else out.push([a, b]);
  }
  return out;
}

function draw() {
  if (!state) return;
  panel();
  const C = state.classes.length, lane = 4, mh = Math.max(ROW, C * lane + 2);
  const w = timeline.clientWidth, dpr = window.devicePixelRatio || 1, h = (C + 1) * ROW + mh + 4;
  timeline.width = w * dpr; timeline.height = h * dpr; timeline.style.height = h + "px";
  const g = timeline.getContext("2d");
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, w, h);
  const n = Math.max(1, L.frames), span = (w - LEFT) / n, x = (f) => LEFT + f * span;
  g.font = "11px system-ui, sans-serif"; g.textBaseline = "middle";
  const label = (text, y, height) => { g.fillStyle = "#aaa"; g.fillText(text, 4, y + height / 2 + 1); };
  label("labelled", 0, ROW);
  g.fillStyle = "#666";
  for (const [a, b] of spans(() => true)) g.fillRect(x(a), 3, (b - a + 1) * span, ROW - 4);
  state.classes.forEach((c, i) => {
    label(`${c.key} ${c.name}`, (i + 1) * ROW, ROW);
    g.fillStyle = c.colour;
    for (const [a, b] of spans((v) => v[i])) g.fillRect(x(a), (i + 1) * ROW + 3, (b - a + 1) * span, ROW - 4);
  });
  const my = (C + 1) * ROW + 2;  // the model's row: one lane per region, where it is present
  label("model", my, mh);
  g.fillStyle = "#2a2a2a"; g.fillRect(x(0), my, L.done * span, mh);
  state.classes.forEach((c, i) => {
    g.fillStyle = c.colour;
    let start = -1;
    for (let f = 0; f <= L.done; f++) {
      const on = f < L.done && L.present[f] && L.present[f][i];
      if (on && start < 0) start = f;
      if (!on && start >= 0) { g.fillRect(x(start), my + 1 + i * lane, (f - start) * span, lane - 1); start = -1; }
    }
  });
  g.fillStyle = "#fff"; g.fillRect(x(L.frame) + span / 2 - 1, 0, 2, h);
}

function buildPanel() {
  const box = $("classes");
  box.innerHTML = "";
  state.classes.forEach((c, i) => {
    const row = document.createElement("div");
    row.className = "row";
    row.innerHTML = `<span class="key">${c.key}</span><span class="swatch" style="background:${c.colour}"></span>` +
      `<span class="name">${c.name}</span><span class="state none" id="state-${i}">–</span>` +
      `<span class="bar"><span class="fill" id="fill-${i}" style="background:${c.colour}"></span>` +
      `<span class="thr" style="left:${100 * state.thresholds[i]}%"></span></span>` +
      `<span class="score num" id="score-${i}"></span>`;
    box.appendChild(row);
  });
  $("lastkey").textContent = state.classes[Math.min(8, state.classes.length - 1)].key;
}

function play() {
  if (!L.playing) return;
  if (L.frame >= L.frames - 1) { L.playing = false; $("playing").textContent = ""; return; }
  const started = performance.now(), next = L.frame + 1;
  const after = () => setTimeout(() => { if (L.playing) { seek(next); play(); } },
                                 Math.max(0, 1000 / L.fps - (performance.now() - started)));
  const pre = new Image();  // the next frame fetched first: playing never shows a blank
  pre.onload = pre.onerror = after;
  pre.src = `frame.jpg?loop=${L.loop}&frame=${next}`;
}

function onKey(e) {
  if (!state || e.ctrlKey && e.key !== "z" || e.altKey || e.metaKey) return;
  const k = e.key, loop = L.loop, frame = L.frame;
  if (k === " ") {
    L.playing = !L.playing; $("playing").textContent = L.playing ? "▶ playing" : ""; play();
  } else if (k === "ArrowRight" || k === "ArrowLeft") {
    L.playing = false; $("playing").textContent = "";
    seek(frame + (k === "ArrowRight" ? 1 : -1) * (e.shiftKey ? 10 : 1));
  } else if (/^[1-9]$/.test(k) && Number(k) <= state.classes.length) {
    edit({ op: "toggle", loop, frame, class: Number(k) - 1 });
  } else if (k === "a") {
    edit({ op: "accept", loop, frame });
  } else if (k === "z") {
    edit({ op: "undo", loop });
  } else if (k === "s") {
    edit({ op: "save", loop });
  } else if (k === "n" || k === "p") {
    const to = loop + (k === "n" ? 1 : -1);
    if (to >= 0 && to < state.loops.length) openLoop(to);
  } else {
    return;
  }
  e.preventDefault();
}

timeline.addEventListener("click", (e) => {
  const r = timeline.getBoundingClientRect(), span = (r.width - LEFT) / Math.max(1, L.frames);
  if (e.clientX - r.left >= LEFT) { L.playing = false; seek(Math.floor((e.clientX - r.left - LEFT) / span)); }
});
window.addEventListener("keydown", onKey);
window.addEventListener("resize", draw);

(async () => {
  try {
    state = await api("api/state");
  } catch (e) { say("cannot reach the labelling server: " + e.message); return; }
  L.state = state;
  if (state.readonly) { $("readonly").style.display = "block"; $("readonly").textContent = state.readonly; }
  buildPanel();
  openLoop(0);
})();
