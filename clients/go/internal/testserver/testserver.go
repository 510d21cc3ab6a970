// Package testserver runs a real agl-server (the Python daemon of this repository) for tests, and
// the Python check of what a Go agent wrote.
//
// It finds the daemon at $AGL_SERVER_BIN or in the repository's virtual environment
// (<repo>/.venv/bin/agl-server, made by `make setup`), and the interpreter at $AGL_PYTHON or
// <repo>/.venv/bin/python.
package testserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// RepoRoot is the repository's root directory (the one holding protos/agl/v1 and pyproject.toml).
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if exists(filepath.Join(dir, "pyproject.toml")) && exists(filepath.Join(dir, "protos", "agl", "v1")) {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("testserver: not inside the agl repository (no pyproject.toml with protos/agl/v1 above the test)")
		}
		dir = parent
	}
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func tool(t testing.TB, env, name string) string {
	t.Helper()
	if path := os.Getenv(env); path != "" {
		return path
	}
	path := filepath.Join(RepoRoot(t), ".venv", "bin", name)
	if !exists(path) {
		t.Fatalf("testserver: %s not found; run `make setup` in the repository root or set %s", path, env)
	}
	return path
}

// Python is the interpreter of the repository's virtual environment.
func Python(t testing.TB) string { return tool(t, "AGL_PYTHON", "python") }

// Server is an agl-server child process on a free loopback port over a fresh data directory.
type Server struct {
	Address string
	Port    int
	DataDir string
	Args    []string
	t       testing.TB
	bin     string
	scratch string
	cmd     *exec.Cmd
	exited  chan struct{}
}

// Start runs agl-server with args added to its command line and stops it (SIGTERM) when the
// test ends. Durability is nosync: a killed process loses nothing (only a machine crash would).
func Start(t testing.TB, args ...string) *Server {
	t.Helper()
	s := &Server{t: t, bin: tool(t, "AGL_SERVER_BIN", "agl-server"), scratch: t.TempDir(), Args: args}
	s.DataDir = filepath.Join(s.scratch, "data")
	s.start()
	t.Cleanup(func() { s.Stop() })
	return s
}

func (s *Server) start() {
	s.t.Helper()
	ready := filepath.Join(s.scratch, "ready.json")
	_ = os.Remove(ready)
	logFile, err := os.OpenFile(s.LogPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		s.t.Fatal(err)
	}
	defer logFile.Close()
	args := append([]string{
		"--host", "127.0.0.1", "--port", strconv.Itoa(s.Port), "--data-dir", s.DataDir,
		"--ready-file", ready, "--durability", "nosync", "--grace", "2",
	}, s.Args...)
	cmd := exec.Command(s.bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("testserver: cannot start %s: %v", s.bin, err)
	}
	s.cmd, s.exited = cmd, make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(s.exited)
	}()
	// The daemon writes the ready file (atomically) once the store is open and the port bound.
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if raw, err := os.ReadFile(ready); err == nil {
			var info struct{ Port int }
			if err := json.Unmarshal(raw, &info); err != nil {
				s.t.Fatalf("testserver: bad ready file %s: %v", raw, err)
			}
			s.Port, s.Address = info.Port, fmt.Sprintf("127.0.0.1:%d", info.Port)
			return
		}
		select {
		case <-s.exited:
			s.t.Fatalf("testserver: agl-server exited before serving:\n%s", s.LogTail())
		case <-time.After(20 * time.Millisecond):
		}
	}
	s.Kill()
	s.t.Fatalf("testserver: agl-server did not serve within 30s:\n%s", s.LogTail())
}

// Stop sends SIGTERM and waits (SIGKILL after 15s).
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	select {
	case <-s.exited:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(15 * time.Second):
		s.Kill()
	}
}

// Kill ends the server with SIGKILL: a crash, nothing flushed.
func (s *Server) Kill() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.exited
}

// Restart starts the server again on the same port and data directory (after Stop or Kill).
func (s *Server) Restart() { s.start() }

// PID is the process id of the running server.
func (s *Server) PID() int { return s.cmd.Process.Pid }

// LogPath is the server's log file.
func (s *Server) LogPath() string { return filepath.Join(s.scratch, "server.log") }

// LogTail returns the last lines of the server's log.
func (s *Server) LogTail() string {
	raw, err := os.ReadFile(s.LogPath())
	if err != nil {
		return "(no log)"
	}
	lines := strings.Split(strings.TrimRight(string(raw), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-40):], "\n")
}

// Expect is what the Python check asserts about a rollout (see clients/interop/verify_rollout.py).
type Expect struct {
	Status    string         `json:"status,omitempty"`
	Reward    *float64       `json:"reward,omitempty"`
	SpanCount int            `json:"span_count,omitempty"`
	Spans     []ExpectedSpan `json:"spans,omitempty"`
}

// ExpectedSpan is a span the rollout must have: its name, a subset of its attributes and the
// name of its parent (nil: any parent; use Root for none).
type ExpectedSpan struct {
	Name       string         `json:"name"`
	Parent     *string        `json:"parent,omitempty"`
	Attributes map[string]any `json:"attributes,omitempty"`
}

// VerifyRollout reads the rollout back with the Python client and fails the test with the
// script's findings when something does not match.
func VerifyRollout(t testing.TB, address, token, rolloutID string, expect Expect) {
	t.Helper()
	raw, err := json.Marshal(expect)
	if err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(RepoRoot(t), "clients", "interop", "verify_rollout.py")
	args := []string{script, "--address", address, "--rollout-id", rolloutID, "--expect", string(raw)}
	if token != "" {
		args = append(args, "--token", token)
	}
	out, err := exec.Command(Python(t), args...).CombinedOutput()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		t.Fatalf("the Python check of rollout %s failed:\n%s", rolloutID, out)
	case err != nil:
		t.Fatalf("cannot run %s: %v", script, err)
	}
}

// Ptr returns a pointer to v (for the optional fields of Expect).
func Ptr[T any](v T) *T { return &v }
