package tritonhttp

import "path"

// contentTypes maps file extensions to media types (RFC 9110 §8.3). The
// table is fixed so that responses do not depend on the machine's
// mime.types.
var contentTypes = map[string]string{
	".html":  "text/html; charset=utf-8",
	".htm":   "text/html; charset=utf-8",
	".css":   "text/css; charset=utf-8",
	".js":    "text/javascript; charset=utf-8",
	".mjs":   "text/javascript; charset=utf-8",
	".json":  "application/json",
	".txt":   "text/plain; charset=utf-8",
	".md":    "text/markdown; charset=utf-8",
	".csv":   "text/csv; charset=utf-8",
	".xml":   "application/xml",
	".png":   "image/png",
	".jpg":   "image/jpeg",
	".jpeg":  "image/jpeg",
	".gif":   "image/gif",
	".webp":  "image/webp",
	".avif":  "image/avif",
	".svg":   "image/svg+xml",
	".ico":   "image/x-icon",
	".pdf":   "application/pdf",
	".wasm":  "application/wasm",
	".woff":  "font/woff",
	".woff2": "font/woff2",
	".ttf":   "font/ttf",
	".otf":   "font/otf",
	".mp3":   "audio/mpeg",
	".ogg":   "audio/ogg",
	".wav":   "audio/wav",
	".mp4":   "video/mp4",
	".webm":  "video/webm",
	".zip":   "application/zip",
	".gz":    "application/gzip",
	".tar":   "application/x-tar",
}

// defaultContentType is sent for an unknown extension (nginx default_type).
const defaultContentType = "application/octet-stream"

// contentType returns the media type for a file name, by its extension,
// case-insensitively.
func contentType(name string) string {
	ext := path.Ext(name)
	if t, ok := contentTypes[ext]; ok {
		return t
	}
	b := []byte(ext)
	lowerASCII(b)
	if t, ok := contentTypes[string(b)]; ok {
		return t
	}
	return defaultContentType
}
