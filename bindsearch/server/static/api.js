// The server's HTTP API: same-origin fetches, errors as one line ({"detail": "..."}), and item details kept
// once fetched.

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

/** JSON from the server; ApiError with the server's one-line detail for a 4xx/5xx answer. */
export async function request(url, init = {}) {
  let response;
  try {
    response = await fetch(url, { credentials: "same-origin", ...init });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, "cannot reach the server: is bindsearch serve still running?");
  }
  const type = response.headers.get("content-type") || "";
  let payload = null;
  if (type.includes("application/json")) {
    try {
      payload = await response.json();
    } catch {
      payload = null;
    }
  }
  if (!response.ok) {
    const detail = payload && typeof payload.detail === "string" ? payload.detail
      : `${response.status} ${response.statusText || "error"}`;
    throw new ApiError(response.status, detail);
  }
  return payload;
}

export function postJson(url, body, init = {}) {
  return request(url, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body), ...init,
  });
}

export const getInfo = () => request("/api/info");

const items = new Map();

/** An item's details (path, size, mtime, duration, tags, windows, snippet), fetched once. */
export function getItem(id) {
  if (!items.has(id)) {
    const pending = request(`/api/items/${encodeURIComponent(id)}`);
    pending.catch(() => items.delete(id));
    items.set(id, pending);
  }
  return items.get(id);
}

export async function setTags(id, add, remove) {
  const details = await postJson(`/api/items/${encodeURIComponent(id)}/tags`, { add, remove });
  items.set(id, Promise.resolve(details));
  return details;
}
