// Query terms ("chips"), the expression grammar as the page reads it, and the search requests they make.
//
// Grammar (the CLI's): query := [+|-] term ((+|-) term)*, term := [W:][MODALITY:]VALUE, where terms are
// joined by " + " / " - " with spaces around the operator, and W is a number ("2:", "0.5:", "-1:").
// MODALITY is any modality of the library's space ("like" names an indexed item).

import { isModality } from "./modalities.js";

const WEIGHT = /^([+-]?(?:\d+(?:\.\d*)?|\.\d+)):([\s\S]*)$/;
const OPERATOR = /\s+([+-])\s+/;

const EXTENSIONS = {
  image: ["jpg", "jpeg", "png", "webp", "bmp", "tif", "tiff", "gif"],
  video: ["mp4", "mov", "mkv", "webm", "avi", "m4v"],
  text: ["txt", "md"],
  audio: ["wav", "flac", "ogg", "oga", "opus", "mp3", "m4a", "aac"],
  imu: ["npy", "npz", "csv"],
};
const SENSORS = ["depth", "thermal", "imu"];

let nextKey = 1;

/** True when the text is written in the expression grammar rather than as plain words. */
export function looksLikeExpression(text) {
  const value = text.trim();
  if (!value) return false;
  if (OPERATOR.test(value) || /^[+-]\s/.test(value)) return true;
  if (WEIGHT.test(value)) return true;
  const prefix = value.split(":", 1)[0].toLowerCase();
  return value.includes(":") && isPrefix(prefix);
}

function isPrefix(word) {
  return word === "like" || isModality(word);
}

function unquote(piece) {
  const p = piece.trim();
  if (p.length >= 2 && ((p[0] === '"' && p.endsWith('"')) || (p[0] === "'" && p.endsWith("'")))) {
    return p.slice(1, -1);
  }
  return p;
}

/** The pieces of an expression, each with its sign: [{sign: 1, text: "2:a dog"}, ...]. */
function pieces(expression) {
  let text = expression.trim();
  let sign = 1;
  const lead = /^([+-])\s+/.exec(text);
  if (lead) {
    sign = lead[1] === "-" ? -1 : 1;
    text = text.slice(lead[0].length);
  }
  const parts = text.split(OPERATOR);
  const out = [{ sign, text: unquote(parts[0]) }];
  for (let n = 1; n < parts.length; n += 2) {
    out.push({ sign: parts[n] === "-" ? -1 : 1, text: unquote(parts[n + 1] ?? "") });
  }
  return out;
}

/**
 * The expression as the server reads it: shell-style quotes around a term taken off, and a leading minus
 * written as a weight ("- a leash" -> "-1:a leash"), since only an operator between terms splits the text.
 */
export function normalizeExpression(expression) {
  return pieces(expression).map((p, n) => {
    if (n > 0) return (p.sign < 0 ? " - " : " + ") + p.text;
    if (p.sign > 0) return p.text;
    const match = WEIGHT.exec(p.text);
    return match ? `${-Number(match[1])}:${match[2]}` : `-1:${p.text}`;
  }).join("");
}

/** One chip per term of the text: plain words make one text chip, an expression one chip per term. */
export function chipsFromText(text) {
  if (!looksLikeExpression(text)) return [textChip(text.trim(), 1)];
  return pieces(text).map(({ sign, text: piece }) => {
    let weight = 1;
    let rest = piece;
    const match = WEIGHT.exec(piece);
    if (match) {
      weight = Number(match[1]);
      rest = match[2];
    }
    weight *= sign;
    const colon = rest.indexOf(":");
    const prefix = colon > 0 ? rest.slice(0, colon).toLowerCase() : "";
    const value = colon > 0 ? rest.slice(colon + 1) : rest;
    if (isPrefix(prefix)) {
      if (!value.trim()) throw new Error(`query term '${piece}': nothing after ${prefix}:`);
      if (prefix === "like") return likeChip(/^\d+$/.test(value) ? Number(value) : value, value, null, weight);
      if (prefix === "text") return textChip(value, weight);
      return chip({ kind: "server", modality: prefix, value, label: value.split("/").pop(), weight });
    }
    if (!rest.trim()) throw new Error(`query term '${piece}' is empty`);
    return textChip(rest, weight);
  });
}

function chip(fields) {
  const weight = Number.isFinite(fields.weight) ? fields.weight : 1;
  return { key: nextKey++, ...fields, weight: Math.abs(weight), sign: weight < 0 ? -1 : 1 };
}

export function textChip(text, weight = 1) {
  return chip({ kind: "text", modality: "text", value: text, label: text, weight });
}

export function likeChip(id, label, modality, weight = 1) {
  return chip({ kind: "like", modality, like: id, label: label || `item ${id}`, weight });
}

/** A chip for a file the user gives (picked, dropped or pasted) or a recording (a Blob with a name). */
export function fileChip(file, { recording = false, filename = file.name } = {}) {
  const guessed = recording ? "audio" : guessModality(filename);
  const chosen = recording ? "audio" : guessed === "imu" ? "imu" : "";
  const preview = /^image\//.test(file.type) ? URL.createObjectURL(file) : null;
  return chip({
    kind: recording ? "recording" : "file", file, filename: filename || "upload",
    label: filename || "upload", modality: chosen, guessed, preview, weight: 1,
  });
}

/** The modality a file's name implies, as the server tells it (null when the name does not say). */
export function guessModality(name) {
  const lower = String(name || "").toLowerCase();
  const parts = lower.split(".");
  if (parts.length < 2) return null;
  const ext = parts[parts.length - 1];
  const inner = parts.length > 2 ? parts[parts.length - 2] : "";
  if (SENSORS.includes(inner)) return inner;
  for (const [modality, list] of Object.entries(EXTENSIONS)) if (list.includes(ext)) return modality;
  return null;
}

export function signedWeight(c) {
  return c.sign * (Number.isFinite(c.weight) ? c.weight : 1);
}

export function isUpload(c) {
  return c.kind === "file" || c.kind === "recording";
}

/** What a chip shows as its kind: its modality, or "like" for an item's stored vector. */
export function chipKind(c) {
  if (c.kind === "like") return "like";
  return c.modality || c.guessed || "file";
}

/**
 * The request a search makes: {url, init} for fetch. JSON to /api/search when every term is text or an
 * indexed item; multipart to /api/search/upload when a term is a file or a recording of the user's.
 */
export function searchRequest({ chips, boxText, targets, filters, windows, k, offset }) {
  const terms = [];
  const uploads = [];
  for (const c of chips) {
    const weight = signedWeight(c);
    if (c.kind === "text") terms.push({ modality: "text", value: c.value, weight });
    else if (c.kind === "like") terms.push({ like: c.like, weight });
    else if (c.kind === "server") terms.push({ modality: c.modality, value: c.value, weight });
    else {
      terms.push({ upload: uploads.length, weight });
      uploads.push(c);
    }
  }
  let expression = null;
  const box = (boxText || "").trim();
  if (box && looksLikeExpression(box)) expression = normalizeExpression(box);
  else if (box) terms.push({ modality: "text", value: box, weight: 1 });
  if (!terms.length && !expression) throw new Error("type something to search for, or add a file");

  if (!uploads.length) {
    const body = { terms: terms.length ? terms : null, expression, targets, k, offset, filters, windows };
    return {
      url: "/api/search",
      init: { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) },
    };
  }
  const form = new FormData();
  for (const c of uploads) form.append("file", c.file, c.filename);
  for (const c of uploads) form.append("modality", c.modality || "");
  if (expression) form.append("text", expression);
  form.append("terms", JSON.stringify(terms));
  form.append("targets", targets === "all" ? "all" : targets.join(","));
  form.append("k", String(k));
  form.append("offset", String(offset));
  form.append("windows", windows ? "true" : "false");
  form.append("filters", JSON.stringify(filters));
  return { url: "/api/search/upload", init: { method: "POST", body: form } };
}
