// An artifact's MIME type, by its file name's extension: a small table of what Codex tasks write
// (source, text, data, images, archives). A table rather than a library: the mime-types package
// would bring 2,000 types for the few dozen a workspace holds, and an unknown name falls back
// to text/plain or application/octet-stream by the content anyway.

const TYPES: Record<string, string> = {
  // text and documents
  txt: "text/plain", log: "text/plain", text: "text/plain",
  md: "text/markdown", markdown: "text/markdown",
  html: "text/html", htm: "text/html", css: "text/css", csv: "text/csv", tsv: "text/tab-separated-values",
  xml: "application/xml", svg: "image/svg+xml",
  json: "application/json", jsonl: "application/jsonl", ndjson: "application/x-ndjson",
  yaml: "application/yaml", yml: "application/yaml", toml: "application/toml",
  pdf: "application/pdf",
  // source code
  js: "text/javascript", mjs: "text/javascript", cjs: "text/javascript", ts: "text/x-typescript", tsx: "text/x-typescript", jsx: "text/javascript",
  py: "text/x-python", rb: "text/x-ruby", go: "text/x-go", rs: "text/x-rust", java: "text/x-java", kt: "text/x-kotlin",
  c: "text/x-c", h: "text/x-c", cc: "text/x-c++", cpp: "text/x-c++", hpp: "text/x-c++", cs: "text/x-csharp",
  sh: "application/x-sh", bash: "application/x-sh", sql: "application/sql",
  patch: "text/x-diff", diff: "text/x-diff",
  // images
  png: "image/png", jpg: "image/jpeg", jpeg: "image/jpeg", gif: "image/gif", webp: "image/webp", ico: "image/vnd.microsoft.icon",
  // archives and binaries
  zip: "application/zip", gz: "application/gzip", tgz: "application/gzip", tar: "application/x-tar", zst: "application/zstd",
  wasm: "application/wasm",
};

/** The MIME type a file name's extension names, or undefined when the table does not know it. */
export function mimeTypeByName(name: string): string | undefined {
  const base = name.slice(name.lastIndexOf("/") + 1);
  const dot = base.lastIndexOf(".");
  return dot > 0 ? TYPES[base.slice(dot + 1).toLowerCase()] : undefined;
}

/** Whether content of this type is text (served as `text`, not base64 `blob`, when it is UTF-8). */
export function isTextual(mimeType: string): boolean {
  return mimeType.startsWith("text/") || /^application\/(json|jsonl|x-ndjson|xml|yaml|toml|sql|x-sh)$/.test(mimeType) || mimeType === "image/svg+xml";
}

/**
 * The type an artifact is served with: the table's, when the content fits it (text types need
 * UTF-8); else by the content: text/plain for UTF-8, application/octet-stream for anything else.
 */
export function artifactMimeType(name: string, utf8: boolean): string {
  const known = mimeTypeByName(name);
  if (known && (utf8 || !isTextual(known))) return known;
  return utf8 ? "text/plain" : "application/octet-stream";
}
