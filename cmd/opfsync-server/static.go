package main

import (
	"fmt"
	"net/http"
	"os"
	"path"
	"strings"
)

// staticTypes fixes the media types the browser is strict about (module
// scripts and wasm streaming compilation), whatever the system's MIME table
// says.
var staticTypes = map[string]string{
	".wasm":        "application/wasm",
	".mjs":         "text/javascript; charset=utf-8",
	".js":          "text/javascript; charset=utf-8",
	".html":        "text/html; charset=utf-8",
	".css":         "text/css; charset=utf-8",
	".json":        "application/json",
	".webmanifest": "application/manifest+json",
}

// staticHandler serves the files of dir with the right media types and
// Cache-Control: no-cache (the browser revalidates, so a rebuilt wasm is
// never served stale).
func staticHandler(dir string) (http.Handler, error) {
	info, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("-static: %w", err)
	}
	if !info.IsDir() {
		return nil, fmt.Errorf("-static %s: not a directory", dir)
	}
	files := http.FileServer(http.Dir(dir))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ct, ok := staticTypes[strings.ToLower(path.Ext(r.URL.Path))]; ok {
			w.Header().Set("Content-Type", ct)
		}
		w.Header().Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	}), nil
}
