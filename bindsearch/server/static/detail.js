// The detail panel: an item's full-size media, its metadata, its time windows and its tags.

import { getItem, setTags } from "./api.js";
import { holdWindow, snippetBox, tagList, windowedUrl } from "./cards.js";
import { inputKind } from "./modalities.js";
import { basename, bytes, clock, date, el, icon, windowLabel } from "./util.js";

let dialog;
let returnFocus = null;
let hooks = {};

/** hooks: like(hit), copy(hit), tagged(details), error(message), readOnly() -> bool */
export function setupDetail(node, given) {
  dialog = node;
  hooks = given;
  dialog.addEventListener("close", () => {
    for (const player of dialog.querySelectorAll("video, audio")) player.pause();
    dialog.replaceChildren();
    if (returnFocus && document.contains(returnFocus)) returnFocus.focus();
    returnFocus = null;
  });
  dialog.addEventListener("click", (e) => {
    if (e.target === dialog) dialog.close();  // a click on the backdrop
  });
}

export function isOpen() {
  return Boolean(dialog && dialog.open);
}

export function closeDetail() {
  if (isOpen()) dialog.close();
}

function fullMedia(hit) {
  const box = el("div.detail-media");
  const m = inputKind(hit.modality);
  if (m === "image" || m === "thermal" || m === "depth" || m === "image1") {
    const img = el("img", { src: hit.media_url, alt: basename(hit.path) });
    // A depth map or a raw array the browser cannot draw: its thumbnail instead.
    img.addEventListener("error", () => { img.src = hit.thumbnail_url; }, { once: true });
    box.append(img);
  } else if (m === "video") {
    const video = el("video", {
      controls: true, preload: "metadata", playsInline: true, poster: hit.thumbnail_url,
      src: windowedUrl(hit.media_url, hit.start, hit.end),
    });
    holdWindow(video, hit.start, hit.end);
    box.append(video);
  } else if (m === "audio") {
    const audio = el("audio", { controls: true, preload: "metadata", src: windowedUrl(hit.media_url, hit.start, hit.end) });
    holdWindow(audio, hit.start, hit.end);
    box.append(el("img.spectrogram", { src: hit.thumbnail_url, alt: "spectrogram" }), audio);
  } else if (m === "text") {
    const text = snippetBox(hit);
    box.append(text);
    box.classList.add("is-text");
    fullText(hit, text);
  } else {
    box.append(el("img", { src: hit.thumbnail_url, alt: `${hit.modality} plot` }));
  }
  return box;
}

const TEXT_CHARS = 200_000;

/** The whole of a text item (its first 200k characters) in place of its snippet. */
async function fullText(hit, box) {
  try {
    const response = await fetch(hit.media_url, { credentials: "same-origin" });
    if (!response.ok) return;  // the snippet stays
    const text = await response.text();
    if (!box.isConnected) return;
    box.dataset.full = "1";
    box.classList.remove("loading");
    box.textContent = text.length > TEXT_CHARS ? `${text.slice(0, TEXT_CHARS)}\n…` : text;
  } catch {
    // the snippet stays
  }
}

function metaRow(label, value) {
  if (value === "" || value === null || value === undefined) return null;
  return [el("dt", {}, label), el("dd", {}, value)];
}

function seekTo(start) {
  const player = dialog.querySelector(".detail-media video, .detail-media audio");
  if (!player) return;
  player.currentTime = start;
  player.play().catch(() => {});
}

function tagEditor(hit, details) {
  const box = el("section.tag-editor", { "aria-label": "tags" });
  const readOnly = hooks.readOnly();
  const draw = (tags) => {
    const list = el("div.tags.editable", {}, tags.length ? tags.map((t) => el("span.tag", {}, t,
      readOnly ? null : el("button.tag-remove", {
        type: "button", title: `Remove the tag ${t}`, "aria-label": `remove tag ${t}`,
        onclick: () => change([], [t]),
      }, "×"))) : el("span.muted", {}, "no tags"));
    box.replaceChildren(el("h3", {}, "Tags"), list);
    if (readOnly) {
      box.append(el("p.muted", {}, "The library is open read-only: tags cannot change."));
      return;
    }
    const input = el("input.tag-input", { type: "text", name: "tag", placeholder: "add a tag", autocomplete: "off" });
    const form = el("form.tag-form", {
      onsubmit: (e) => {
        e.preventDefault();
        const tags = input.value.split(",").map((t) => t.trim()).filter(Boolean);
        if (tags.length) change(tags, []);
      },
    }, input, el("button.btn.small", { type: "submit" }, icon("tag"), "Add"));
    box.append(form);
  };
  const change = async (add, remove) => {
    box.classList.add("busy");
    try {
      const updated = await setTags(hit.id, add, remove);
      hit.tags = updated.tags;
      draw(updated.tags);
      hooks.tagged(updated);
      box.querySelector(".tag-input")?.focus();
    } catch (error) {
      hooks.error(error.message);
    } finally {
      box.classList.remove("busy");
    }
  };
  draw(details.tags || []);
  return box;
}

function sidePanel(hit, details) {
  const name = basename(hit.path);
  const windows = details && details.windows ? details.windows : [];
  const side = el("div.detail-side");
  side.append(
    el("h2.detail-title", { title: hit.path }, name),
    el("div.detail-path", {}, el("code", {}, hit.path),
      el("button.icon-btn", { type: "button", title: "Copy path", "aria-label": "copy path", onclick: () => hooks.copy(hit) },
        icon("copy"))),
    el("dl.meta", {},
      metaRow("Modality", hit.modality),
      metaRow("Score", hit.score != null ? `${hit.score.toFixed(3)} cosine · ${hit.calibrated >= 0 ? "+" : ""}${hit.calibrated.toFixed(2)}σ calibrated` : ""),
      metaRow("Moment", windowLabel(hit.start, hit.end)),
      details ? [
        metaRow("Size", bytes(details.size)),
        metaRow("Modified", date(details.mtime)),
        metaRow("Duration", details.duration != null ? clock(details.duration) : ""),
        metaRow("Item", `#${details.id}`),
      ] : null),
  );
  if (windows.length) {
    side.append(el("section.windows", {}, el("h3", {}, `Time windows (${windows.length})`),
      el("div.window-list", {}, windows.map((w) => el("button.window-chip", {
        type: "button", title: "Play from here",
        class: hit.start != null && Math.abs(w.start - hit.start) < 0.01 ? "window-chip current" : "window-chip",
        onclick: () => seekTo(w.start),
      }, windowLabel(w.start, w.end))))));
  }
  if (details) side.append(tagEditor(hit, details));
  side.append(el("div.detail-actions", {},
    el("button.btn.primary", { type: "button", onclick: () => { dialog.close(); hooks.like(hit); } },
      icon("similar"), "More like this"),
    el("a.btn", { href: hit.media_url, target: "_blank", rel: "noopener" }, icon("open"), "Open file")));
  return side;
}

/** Opens the panel for a hit; focus goes back to ``from`` when it closes. */
export async function openDetail(hit, from) {
  returnFocus = from || document.activeElement;
  const close = el("button.icon-btn.detail-close", {
    type: "button", title: "Close (Esc)", "aria-label": "close", onclick: () => dialog.close(),
  }, icon("close"));
  const body = el("div.detail-body", {}, fullMedia(hit), sidePanel(hit, null));
  dialog.replaceChildren(close, body);
  dialog.setAttribute("aria-label", basename(hit.path));
  if (!dialog.open) dialog.showModal();
  close.focus();
  try {
    const details = await getItem(hit.id);
    if (dialog.open && body.isConnected) body.replaceChild(sidePanel(hit, details), body.lastChild);
  } catch (error) {
    hooks.error(error.message);
  }
}
