package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
)

// maxBulk bounds /bytes and /sink (1 GiB) so a typo cannot stream forever.
const maxBulk = 1 << 30

// Pattern is the byte stream /bytes serves: byte i is Pattern(i). Clients
// check a bulk transfer against it without keeping a copy.
func Pattern(i int64) byte { return byte(i*131 + i>>9) }

// handleBytes streams n pattern bytes (GET /bytes?n=1048576): a bulk
// transfer from the userspace stack to the client, whose bytes the client
// can verify.
func handleBytes(w http.ResponseWriter, r *http.Request) {
	n, err := strconv.ParseInt(r.URL.Query().Get("n"), 10, 64)
	if err != nil || n < 0 || n > maxBulk {
		http.Error(w, fmt.Sprintf("n must be a byte count from 0 to %d", maxBulk), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
	var buf [32 << 10]byte
	for off := int64(0); off < n; {
		k := min(int64(len(buf)), n-off)
		for i := int64(0); i < k; i++ {
			buf[i] = Pattern(off + i)
		}
		if _, err := w.Write(buf[:k]); err != nil {
			return
		}
		off += k
	}
}

// SinkResult is what POST /sink answers.
type SinkResult struct {
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
}

// sinkHandler reads the request body and answers its length and SHA-256:
// a bulk transfer to the userspace stack whose bytes the client can
// verify. A body over limit bytes answers 413 Content Too Large, before
// reading anything when the request declares its length.
func sinkHandler(limit int64) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tooLarge := fmt.Sprintf("the body is over the %d-byte limit of /sink", limit)
		if r.ContentLength > limit {
			http.Error(w, tooLarge, http.StatusRequestEntityTooLarge)
			return
		}
		h := sha256.New()
		n, err := io.Copy(h, http.MaxBytesReader(w, r.Body, limit))
		var tooBig *http.MaxBytesError
		switch {
		case errors.As(err, &tooBig):
			http.Error(w, tooLarge, http.StatusRequestEntityTooLarge)
			return
		case err != nil:
			http.Error(w, "reading the body: "+err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(SinkResult{Bytes: n, SHA256: hex.EncodeToString(h.Sum(nil))})
	}
}
