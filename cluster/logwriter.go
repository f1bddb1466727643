package cluster

import (
	"bytes"
	"context"
	"log/slog"
)

// logWriter turns hclog's text lines (Raft's and its transport's, e.g.
// "2025-01-02T03:04:05.678Z [WARN]  raft: heartbeat timeout reached")
// into slog records, so Raft logs through the node's injected logger
// without this package importing hclog.
type logWriter struct {
	log *slog.Logger
}

func (w logWriter) Write(p []byte) (int, error) {
	for line := range bytes.SplitSeq(bytes.TrimRight(p, "\n"), []byte{'\n'}) {
		level, msg := slog.LevelInfo, line
		if i := bytes.IndexByte(line, '['); i >= 0 {
			if j := bytes.IndexByte(line[i:], ']'); j > 0 {
				switch string(line[i+1 : i+j]) {
				case "TRACE", "DEBUG":
					level = slog.LevelDebug
				case "WARN":
					level = slog.LevelWarn
				case "ERROR":
					level = slog.LevelError
				}
				msg = bytes.TrimSpace(line[i+j+1:])
			}
		}
		if w.log.Enabled(context.Background(), level) {
			w.log.Log(context.Background(), level, string(msg), "component", "raft")
		}
	}
	return len(p), nil
}
