// Result cards: one per hit, drawn the way its modality is best seen.

import { getItem } from "./api.js";
import { iconName, inputKind, modalityName } from "./modalities.js";
import { basename, el, icon, windowLabel } from "./util.js";

// Input kinds drawn as a picture (a single-channel image or a series as its plot); audio as a spectrogram.
const PICTURES = new Set(["image", "depth", "thermal", "imu", "image1", "timeseries", "audio"]);

// Text cards fetch their snippet when they come into view.
const snippetObserver = "IntersectionObserver" in window
  ? new IntersectionObserver((entries) => {
    for (const entry of entries) {
      if (!entry.isIntersecting) continue;
      snippetObserver.unobserve(entry.target);
      loadSnippet(entry.target);
    }
  }, { rootMargin: "200px" })
  : null;

function loadSnippet(box) {
  const id = Number(box.dataset.item);
  getItem(id).then((item) => {
    if (box.dataset.full) return;
    box.classList.remove("loading");
    box.textContent = item.snippet ? item.snippet.trim() : "(no text to show)";
  }, () => {
    if (box.dataset.full) return;
    box.classList.remove("loading");
    box.textContent = "(the text could not be read)";
  });
}

export function snippetBox(hit) {
  const box = el("div.snippet.loading", { dataset: { item: hit.id } }, "…");
  if (snippetObserver) snippetObserver.observe(box);
  else loadSnippet(box);
  return box;
}

/** The media URL with a media fragment for the hit's window (#t=start,end), so players start there. */
export function windowedUrl(url, start, end) {
  if (start === null || start === undefined) return url;
  return `${url}#t=${start}${end === null || end === undefined ? "" : `,${end}`}`;
}

/** Keeps a player inside [start, end): it starts at start and goes back there at the end. */
export function holdWindow(player, start, end, loop = false) {
  if (start === null || start === undefined) return;
  player.addEventListener("play", () => {
    if (player.currentTime < start - 0.25 || (end != null && player.currentTime >= end - 0.05)) {
      player.currentTime = start;
    }
  });
  if (loop && end != null) {
    player.addEventListener("timeupdate", () => {
      if (player.currentTime >= end) player.currentTime = start;
    });
  }
}

function thumbnail(hit, alt) {
  const img = el("img.thumb", { src: hit.thumbnail_url, alt, loading: "lazy", decoding: "async" });
  img.addEventListener("error", () => img.replaceWith(placeholder(hit.modality)), { once: true });
  return img;
}

function placeholder(modality) {
  return el("div.placeholder", {}, icon(modality ? iconName(modality) : "file", "icon big"));
}

function mediaFor(hit, name) {
  const media = el("div.media");
  const kind = inputKind(hit.modality);
  if (kind === "text") {
    media.append(snippetBox(hit));
  } else if (kind === "video") {
    const video = el("video.thumb", {
      muted: true, preload: "none", playsInline: true, poster: hit.thumbnail_url, loop: hit.start == null,
      src: windowedUrl(hit.media_url, hit.start, hit.end), "aria-label": `video ${name}`,
    });
    video.defaultMuted = true;
    holdWindow(video, hit.start, hit.end, true);
    const play = () => video.play().catch(() => {});
    const stop = () => {
      video.pause();
      if (hit.start != null) video.currentTime = hit.start;
    };
    media.addEventListener("mouseenter", play);
    media.addEventListener("mouseleave", stop);
    media.append(video, el("span.play-hint", {}, icon("video")));
  } else if (PICTURES.has(kind)) {
    media.append(thumbnail(hit, `${hit.modality} ${name}`));
  } else {
    media.append(placeholder(hit.modality));
  }
  media.append(el("span.badge.kind", { title: hit.modality }, icon(iconName(hit.modality)), modalityName(hit.modality)));
  const span = windowLabel(hit.start, hit.end);
  if (span) media.append(el("span.badge.window", { title: "the matching moment" }, span));
  return media;
}

export function tagList(tags) {
  return el("div.tags", {}, (tags || []).map((t) => el("span.tag", {}, t)));
}

/**
 * The card of a hit: <article class="result" data-id data-path tabindex=0>. ``actions`` holds the
 * callbacks: like(hit, event), copy(hit), open(hit, card).
 */
export function renderCard(hit, actions) {
  const name = basename(hit.path);
  const card = el(`article.result.m-${hit.modality}.k-${inputKind(hit.modality)}`, {
    tabindex: "0",
    dataset: { id: hit.id, path: hit.path, modality: hit.modality, score: hit.score, calibrated: hit.calibrated },
    "aria-label": `${hit.modality} ${name}, score ${hit.score.toFixed(3)}`,
  });
  card.append(mediaFor(hit, name));
  if (inputKind(hit.modality) === "audio") {
    const audio = el("audio.player", {
      controls: true, preload: "none", src: windowedUrl(hit.media_url, hit.start, hit.end),
      "aria-label": `play ${name}`,
    });
    holdWindow(audio, hit.start, hit.end);
    card.append(audio);
  }
  const relevance = Math.max(0, Math.min(1, (hit.calibrated + 1) / 5));
  card.querySelector(".media").append(el("div.actions", {},
    el("button.act.like", {
      type: "button", title: "More like this (Shift-click: add it to the query)", "aria-label": "more like this",
      onclick: (e) => { e.stopPropagation(); actions.like(hit, e); },
    }, icon("similar"), el("span", {}, "Similar")),
    el("button.act.copy", {
      type: "button", title: `Copy path: ${hit.path}`, "aria-label": "copy path",
      onclick: (e) => { e.stopPropagation(); actions.copy(hit); },
    }, icon("copy"))));
  card.append(el("div.info", {},
    el("div.line", {},
      el("span.name", { title: hit.path }, name),
      el("span.score", { title: "raw cosine similarity" }, hit.score.toFixed(3))),
    el("div.line.sub", {},
      el("span.calibrated", {
        title: "calibrated score: standard deviations above a typical item of its modality for this query",
      }, el("span.meter", {}, el("span.fill", { style: { width: `${Math.round(relevance * 100)}%` } })),
      `${hit.calibrated >= 0 ? "+" : ""}${hit.calibrated.toFixed(2)}σ`),
      el("span.rank", {}, `#${hit.rank}`)),
    tagList(hit.tags)));
  card.addEventListener("click", (e) => {
    if (e.target.closest("button, audio, video[controls], a, input")) return;
    actions.open(hit, card);
  });
  return card;
}

export function hitKey(hit) {
  return `${hit.id}@${hit.start ?? ""}`;
}
