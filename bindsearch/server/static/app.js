// The search page of `bindsearch serve`: query terms, targets and filters; results as a grid of cards.

import { ApiError, getInfo, getItem, request } from "./api.js";
import { hitKey, renderCard } from "./cards.js";
import { closeDetail, isOpen, openDetail, setupDetail } from "./detail.js";
import {
  chipKind, chipsFromText, fileChip, likeChip, searchRequest, signedWeight,
} from "./query.js";
import { iconName, modalities, modalityName, setModalities } from "./modalities.js";
import { basename, copyText, el, icon, toast } from "./util.js";

// Results a page: 24, or ?k=N in the page's address (1 to 200).
const PAGE = (() => {
  const k = Number.parseInt(new URLSearchParams(window.location.search).get("k") || "", 10);
  return Number.isFinite(k) && k >= 1 ? Math.min(k, 200) : 24;
})();
const $ = (id) => document.getElementById(id);

const state = {
  info: null,
  chips: [],
  targets: new Set(),  // empty: all
  hits: [],
  cards: new Map(),  // hitKey -> card element
  query: null,  // the last search's inputs, for the next page
  offset: 0,
  hasMore: false,
  loading: false,
  generation: 0,
  controller: null,
};

// ---------------------------------------------------------------- errors and status

function showError(message) {
  $("error-text").textContent = message;
  $("error").hidden = false;
}

function clearError() {
  $("error").hidden = true;
  $("error-text").textContent = "";
}

function setBusy(busy, text) {
  state.loading = busy;
  $("spinner").hidden = !busy;
  document.body.classList.toggle("searching", busy);
  if (text !== undefined) $("status-text").textContent = text;
}

// ---------------------------------------------------------------- library info, targets, tags

async function loadInfo() {
  try {
    state.info = await getInfo();
  } catch (error) {
    showError(error.message);
    return;
  }
  const info = state.info;
  setModalities(info);
  const total = Object.values(info.counts || {}).reduce((a, b) => a + b, 0);
  $("library").textContent = `${basename(info.path)} · ${total.toLocaleString()} items`;
  $("library").title = `${info.path}\nspace: ${info.space}\n${info.dim} dimensions`;
  drawTargets();
  drawTags();
  $("library-counts").replaceChildren(...modalities().filter((m) => info.counts?.[m]).map((m) =>
    el("span.count-pill", { dataset: { modality: m } }, icon(iconName(m)),
      `${info.counts[m].toLocaleString()} ${modalityName(m)}`)));
}

function drawTargets() {
  const counts = state.info?.counts || {};
  const box = $("targets");
  const pill = (name, label, count) => el("button.pill", {
    type: "button", dataset: { target: name }, "aria-pressed": String(isTarget(name)),
    onclick: () => toggleTarget(name),
  }, icon(iconName(name)), label, count != null ? el("span.pill-count", {}, count.toLocaleString()) : null);
  box.replaceChildren(pill("all", "All", null),
    ...modalities().filter((m) => counts[m] > 0).map((m) => pill(m, modalityName(m), counts[m])));
}

function isTarget(name) {
  return name === "all" ? state.targets.size === 0 : state.targets.has(name);
}

function toggleTarget(name) {
  if (name === "all") state.targets.clear();
  else if (state.targets.has(name)) state.targets.delete(name);
  else state.targets.add(name);
  for (const b of $("targets").querySelectorAll(".pill")) b.setAttribute("aria-pressed", String(isTarget(b.dataset.target)));
  if (state.query) search();
}

function drawTags() {
  const tags = Object.entries(state.info?.tags || {}).sort((a, b) => a[0].localeCompare(b[0]));
  const select = $("tags");
  const chosen = new Set([...select.selectedOptions].map((o) => o.value));
  select.replaceChildren(...tags.map(([t, n]) => el("option", { value: t, selected: chosen.has(t) }, `${t} (${n})`)));
  select.disabled = tags.length === 0;
  select.size = Math.max(1, Math.min(4, tags.length));
  select.title = tags.length ? "Ctrl-click to choose several: items must carry them all" : "no item has a tag yet";
}

// ---------------------------------------------------------------- chips

function drawChips() {
  const box = $("chips");
  box.replaceChildren(...state.chips.map(chipElement));
  $("query").classList.toggle("has-chips", state.chips.length > 0);
}

function chipElement(c) {
  const kind = chipKind(c);
  const weight = el("input.chip-weight", {
    type: "number", step: "0.1", min: "0", value: String(c.weight), "aria-label": `weight of ${c.label}`,
    title: "weight",
    oninput: () => { const w = Number(weight.value); c.weight = Number.isFinite(w) ? Math.abs(w) : 1; },
  });
  const sign = el("button.chip-sign", {
    type: "button", "aria-label": "flip sign", title: "add (+) or subtract (−) this term",
    onclick: () => { c.sign = -c.sign; drawChips(); },
  }, c.sign < 0 ? "−" : "+");
  const parts = [sign];
  if (c.preview) parts.push(el("img.chip-preview", { src: c.preview, alt: "" }));
  else parts.push(icon(kind === "file" ? "file" : iconName(kind), "icon chip-icon"));
  if (c.kind === "file") {
    const select = el("select.chip-modality", {
      "aria-label": `modality of ${c.label}`, title: "modality (auto: told from the file)",
      onchange: () => { c.modality = select.value; },
    }, el("option", { value: "" }, c.guessed ? `${c.guessed}` : "auto"),
    modalities().filter((m) => m !== "text" && m !== c.guessed).map((m) => el("option", { value: m }, m)));
    select.value = c.modality || "";
    parts.push(select);
  } else {
    parts.push(el("span.chip-kind", {}, modalityName(kind)));
  }
  parts.push(el("span.chip-label", { title: c.kind === "like" ? `item ${c.like}` : c.label }, c.label),
    weight,
    el("button.chip-remove", {
      type: "button", "aria-label": `remove ${c.label}`, title: "remove",
      onclick: () => removeChip(c),
    }, icon("close")));
  return el(`span.chip.k-${kind}${c.sign < 0 ? ".negative" : ""}`, {
    dataset: { kind: c.kind, modality: kind, weight: String(signedWeight(c)) },
  }, parts);
}

function addChips(chips) {
  state.chips.push(...chips);
  drawChips();
}

function removeChip(c) {
  state.chips = state.chips.filter((x) => x !== c);
  if (c.preview) URL.revokeObjectURL(c.preview);
  drawChips();
  $("q").focus();
}

function clearChips() {
  for (const c of state.chips) if (c.preview) URL.revokeObjectURL(c.preview);
  state.chips = [];
}

function addTermFromBox() {
  const input = $("q");
  const text = input.value.trim();
  if (!text) {
    input.focus();
    return;
  }
  try {
    addChips(chipsFromText(text));
    input.value = "";
    clearError();
  } catch (error) {
    showError(error.message);
  }
  input.focus();
}

function addFiles(files) {
  const list = [...files].filter((f) => f && f.size !== undefined);
  if (!list.length) return;
  addChips(list.map((f) => fileChip(f)));
  toast(list.length === 1 ? `Added ${list[0].name || "a file"}` : `Added ${list.length} files`);
}

// ---------------------------------------------------------------- searching

function filters() {
  const form = $("filters");
  const text = (name) => form.elements[name].value.trim() || null;
  const number = (name) => {
    const v = form.elements[name].value.trim();
    return v === "" ? null : Number(v);
  };
  return {
    paths: (form.elements.paths.value || "").split(",").map((p) => p.trim()).filter(Boolean),
    tags: [...$("tags").selectedOptions].map((o) => o.value),
    min_size: null, max_size: null,
    after: text("after"), before: text("before"),
    min_duration: number("min_duration"), max_duration: number("max_duration"),
  };
}

function countFilters(f) {
  return f.paths.length + f.tags.length + ["after", "before", "min_duration", "max_duration"]
    .filter((k) => f[k] !== null).length;
}

/** A new search from what the page shows now (terms, targets, filters); its first page. */
async function search() {
  let query;
  try {
    const f = filters();
    const n = countFilters(f);
    $("filter-count").hidden = n === 0;
    $("filter-count").textContent = String(n);
    query = {
      chips: [...state.chips], boxText: $("q").value, filters: f, windows: $("windows").checked,
      targets: state.targets.size ? modalities().filter((m) => state.targets.has(m)) : "all",
    };
    searchRequest({ ...query, k: PAGE, offset: 0 });  // checks there is something to search for
  } catch (error) {
    showError(error.message);
    return;
  }
  state.query = query;
  await fetchPage(0);
}

async function fetchPage(offset) {
  const query = state.query;
  if (!query) return;
  if (state.controller) state.controller.abort();
  const controller = new AbortController();
  state.controller = controller;
  const generation = ++state.generation;
  setBusy(true, offset ? "Loading more…" : "Searching…");
  $("load-more").disabled = true;
  try {
    const { url, init } = searchRequest({ ...query, k: PAGE, offset });
    const result = await request(url, { ...init, signal: controller.signal });
    if (generation !== state.generation) return;
    clearError();
    if (offset === 0) resetResults();
    state.offset = offset + result.hits.length;
    state.hasMore = result.hits.length >= PAGE;
    state.tookMs = result.took_ms;
    addHits(result.hits);
  } catch (error) {
    if (error.name === "AbortError" || generation !== state.generation) return;
    showError(error instanceof ApiError ? error.message : `the search failed: ${error.message}`);
    state.hasMore = false;
  } finally {
    if (generation === state.generation) {
      setBusy(false);
      state.controller = null;
      $("load-more").disabled = false;
      updateStatus();
      recheckSentinel();
    }
  }
}

let scrollObserver = null;

/** Asks again whether the end of the grid is in view: a short page leaves it there, wanting the next. */
function recheckSentinel() {
  if (!scrollObserver || !state.hasMore) return;
  scrollObserver.unobserve($("sentinel"));
  scrollObserver.observe($("sentinel"));
}

function resetResults() {
  for (const v of $("grid").querySelectorAll("video, audio")) v.pause();
  state.hits = [];
  state.cards.clear();
  $("grid").replaceChildren();
  $("welcome").hidden = true;
  window.scrollTo({ top: 0 });
}

const cardActions = {
  like: (hit, event) => moreLikeThis(hit, event && event.shiftKey),
  copy: async (hit) => toast(await copyText(hit.path) ? "Path copied" : "Could not copy the path"),
  open: (hit, card) => openDetail(hit, card),
};

function addHits(hits) {
  for (const hit of hits) {
    const key = hitKey(hit);
    if (state.cards.has(key)) continue;
    state.hits.push(hit);
    state.cards.set(key, renderCard(hit, cardActions));
  }
  applyView();
}

function moreLikeThis(hit, add = false) {
  if (!add) {
    clearChips();
    $("q").value = "";
  }
  addChips([likeChip(hit.id, basename(hit.path), hit.modality)]);
  search();
}

// ---------------------------------------------------------------- sorting, cut-off, status

function cutoff() {
  const input = $("cutoff");
  return Number(input.value) <= Number(input.min) ? null : Number(input.value);
}

async function applyView() {
  const mode = $("sort").value;
  let ordered = [...state.hits];
  if (mode !== "score") {
    const generation = state.generation;
    const times = new Map();
    await Promise.all(ordered.map((h) => getItem(h.id).then((d) => times.set(h.id, d.mtime), () => times.set(h.id, 0))));
    if (generation !== state.generation || mode !== $("sort").value) return;
    const sign = mode === "newest" ? -1 : 1;
    ordered.sort((a, b) => sign * ((times.get(a.id) || 0) - (times.get(b.id) || 0)) || a.rank - b.rank);
  } else {
    ordered.sort((a, b) => a.rank - b.rank);
  }
  const min = cutoff();
  const grid = $("grid");
  const focused = document.activeElement;
  for (const hit of ordered) {
    const card = state.cards.get(hitKey(hit));
    card.hidden = min !== null && hit.calibrated < min;
    grid.append(card);
  }
  if (focused && grid.contains(focused)) focused.focus({ preventScroll: true });
  updateStatus();
}

function updateStatus() {
  const loadMore = $("load-more");
  loadMore.hidden = !state.hasMore;
  if (state.loading) return;
  if (!state.query) {
    $("status-text").textContent = "";
    return;
  }
  const shown = state.hits.filter((h) => !state.cards.get(hitKey(h)).hidden).length;
  const hidden = state.hits.length - shown;
  const parts = [];
  parts.push(state.hits.length === 0 ? "No matches" : `${state.hits.length}${state.hasMore ? "+" : ""} result${state.hits.length === 1 ? "" : "s"}`);
  if (hidden) parts.push(`${hidden} below the cut-off`);
  if (state.tookMs !== undefined) parts.push(`took ${state.tookMs < 10 ? state.tookMs.toFixed(1) : Math.round(state.tookMs)} ms`);
  $("status-text").textContent = parts.join(" · ");
  $("grid").classList.toggle("empty", state.hits.length === 0);
}

function updateCutoffLabel() {
  const min = cutoff();
  $("cutoff-value").textContent = min === null ? "any" : `${min >= 0 ? "+" : ""}${min.toFixed(1)}σ`;
}

// ---------------------------------------------------------------- keyboard

function visibleCards() {
  return [...$("grid").querySelectorAll(".result:not([hidden])")];
}

function columns(cards) {
  if (cards.length < 2) return 1;
  const top = cards[0].offsetTop;
  const n = cards.findIndex((c) => c.offsetTop !== top);
  return n === -1 ? cards.length : n;
}

function onGridKey(event) {
  const card = event.target.closest(".result");
  if (!card || event.target !== card) return;
  const cards = visibleCards();
  const index = cards.indexOf(card);
  const cols = columns(cards);
  const moves = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: cols, ArrowUp: -cols };
  if (event.key in moves) {
    event.preventDefault();
    const next = cards[Math.max(0, Math.min(cards.length - 1, index + moves[event.key]))];
    next.focus();
    next.scrollIntoView({ block: "nearest" });
    if (event.key === "ArrowDown" && index + cols >= cards.length - cols && state.hasMore && !state.loading) {
      fetchPage(state.offset);
    }
  } else if (event.key === "Home" || event.key === "End") {
    event.preventDefault();
    cards[event.key === "Home" ? 0 : cards.length - 1].focus();
  } else if (event.key === "Enter" || event.key === " ") {
    event.preventDefault();
    const hit = state.hits.find((h) => state.cards.get(hitKey(h)) === card);
    if (hit) openDetail(hit, card);
  }
}

function onGlobalKey(event) {
  if (event.key === "Escape" && isOpen()) {
    event.preventDefault();
    closeDetail();
    return;
  }
  const typing = event.target.closest("input, textarea, select, [contenteditable]");
  if (event.key === "/" && !typing && !isOpen()) {
    event.preventDefault();
    $("q").focus();
  }
}

// ---------------------------------------------------------------- files: drop, paste, microphone

function setupDrop() {
  const overlay = $("drop");
  let depth = 0;
  const hasFiles = (e) => e.dataTransfer && [...e.dataTransfer.types].includes("Files");
  document.addEventListener("dragenter", (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    depth += 1;
    overlay.hidden = false;
  });
  document.addEventListener("dragover", (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    e.dataTransfer.dropEffect = "copy";
  });
  document.addEventListener("dragleave", () => {
    depth = Math.max(0, depth - 1);
    if (depth === 0) overlay.hidden = true;
  });
  document.addEventListener("drop", (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    depth = 0;
    overlay.hidden = true;
    addFiles(e.dataTransfer.files);
  });
  document.addEventListener("paste", (e) => {
    const files = [...(e.clipboardData?.items || [])].filter((i) => i.kind === "file").map((i) => i.getAsFile())
      .filter(Boolean).map((f, n) => (f.name && f.name !== "image.png" ? f
        : new File([f], `pasted-${Date.now()}${n ? `-${n}` : ""}.${(f.type.split("/")[1] || "png").replace("jpeg", "jpg")}`, { type: f.type })));
    if (!files.length) return;
    e.preventDefault();
    addFiles(files);
  });
}

function setupRecorder() {
  const button = $("record");
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia || !window.MediaRecorder) return;
  button.hidden = false;
  let recorder = null;
  let timer = null;
  const stopTimer = () => {
    clearInterval(timer);
    $("rec-time").textContent = "";
  };
  button.addEventListener("click", async () => {
    if (recorder) {
      recorder.stop();
      return;
    }
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    } catch (error) {
      showError(`the microphone is not available: ${error.message || error.name}`);
      return;
    }
    const chunks = [];
    recorder = new MediaRecorder(stream);
    const began = Date.now();
    recorder.addEventListener("dataavailable", (e) => { if (e.data.size) chunks.push(e.data); });
    recorder.addEventListener("stop", () => {
      for (const track of stream.getTracks()) track.stop();
      const type = recorder.mimeType || "audio/webm";
      const seconds = Math.round((Date.now() - began) / 1000);
      recorder = null;
      stopTimer();
      button.classList.remove("recording");
      button.setAttribute("aria-pressed", "false");
      if (!chunks.length) return;
      const ext = type.includes("ogg") ? "ogg" : type.includes("mp4") ? "m4a" : "webm";
      const blob = new Blob(chunks, { type });
      const c = fileChip(blob, { recording: true, filename: `recording.${ext}` });
      c.label = `recording ${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, "0")}`;
      addChips([c]);
    });
    recorder.start();
    button.classList.add("recording");
    button.setAttribute("aria-pressed", "true");
    timer = setInterval(() => {
      const s = Math.floor((Date.now() - began) / 1000);
      $("rec-time").textContent = `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
    }, 250);
  });
}

// ---------------------------------------------------------------- wiring

function setup() {
  setupDetail($("detail"), {
    like: (hit) => moreLikeThis(hit),
    copy: cardActions.copy,
    error: showError,
    readOnly: () => Boolean(state.info && state.info.read_only),
    tagged: (details) => {
      for (const hit of state.hits) {
        if (hit.id !== details.id) continue;
        hit.tags = details.tags;
        const old = state.cards.get(hitKey(hit)).querySelector(".tags");
        old.replaceChildren(...details.tags.map((t) => el("span.tag", {}, t)));
      }
      getInfo().then((info) => { state.info = info; drawTags(); }, () => {});
    },
  });

  $("search-form").addEventListener("submit", (e) => {
    e.preventDefault();
    search();
  });
  $("q").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      addTermFromBox();
    } else if (e.key === "Backspace" && !e.target.value && state.chips.length) {
      removeChip(state.chips[state.chips.length - 1]);
    }
  });
  $("query").addEventListener("click", (e) => { if (e.target === e.currentTarget || e.target.id === "chips") $("q").focus(); });
  $("add-term").addEventListener("click", addTermFromBox);
  $("file").addEventListener("change", (e) => {
    addFiles(e.target.files);
    e.target.value = "";
  });
  $("error-close").addEventListener("click", clearError);

  $("filters-toggle").addEventListener("click", () => {
    const panel = $("filters");
    panel.hidden = !panel.hidden;
    $("filters-toggle").setAttribute("aria-expanded", String(!panel.hidden));
    if (!panel.hidden) panel.elements.paths.focus();
  });
  $("filters").addEventListener("submit", (e) => {
    e.preventDefault();
    search();
  });
  $("filters").addEventListener("reset", () => setTimeout(() => { if (state.query) search(); }));
  $("windows").addEventListener("change", () => { if (state.query) search(); });
  $("sort").addEventListener("change", applyView);
  $("cutoff").addEventListener("input", () => {
    updateCutoffLabel();
    applyView();
  });

  $("grid").addEventListener("keydown", onGridKey);
  document.addEventListener("keydown", onGlobalKey);
  $("load-more").addEventListener("click", () => fetchPage(state.offset));
  if ("IntersectionObserver" in window) {
    scrollObserver = new IntersectionObserver((entries) => {
      if (entries.some((e) => e.isIntersecting) && state.hasMore && !state.loading) fetchPage(state.offset);
    }, { rootMargin: "200px" });
    scrollObserver.observe($("sentinel"));
  }
  setupDrop();
  setupRecorder();
  updateCutoffLabel();
  loadInfo();
  $("q").focus();
}

setup();
