// The modalities of the library's space, as /api/info tells them: the seven built-in ones, and any a bound
// space adds (a vibration logger, a sonar...). Each has an input kind that says how its items are drawn: a
// built-in modality is its own kind; an added one is "timeseries" (drawn as a plot), "image1" (a
// single-channel picture) or "audio" (a spectrogram and a player).

export const BUILTIN = ["image", "video", "text", "audio", "depth", "thermal", "imu"];

// The icon an added modality borrows from the built-in modality of its input kind.
const KIND_ICONS = { timeseries: "imu", image1: "thermal", audio: "audio" };

let kinds = new Map(BUILTIN.map((m) => [m, m]));

/** Takes the space's modalities from /api/info (older servers send none: the built-in ones stay). */
export function setModalities(info) {
  const given = info?.modalities;
  if (given && typeof given === "object" && Object.keys(given).length) {
    kinds = new Map(Object.entries(given).map(([m, kind]) => [m, String(kind)]));
  }
}

/** The space's modalities, built-in ones first. */
export function modalities() {
  return [...kinds.keys()];
}

export function isModality(name) {
  return kinds.has(name);
}

/** What reads and draws a modality's items: a built-in modality's own name, or an added one's input kind. */
export function inputKind(modality) {
  return kinds.get(modality) || modality;
}

export function iconName(modality) {
  return KIND_ICONS[kinds.get(modality)] || modality;
}

export function modalityName(modality) {
  return modality === "imu" ? "IMU" : modality;
}
