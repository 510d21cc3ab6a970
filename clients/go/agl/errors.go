package agl

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	aglv1 "github.com/agl-dev/agl/clients/go/gen/agl/v1"
)

// ErrNotStarted is the cause ([context.Cause]) of a handler's context when the server refused
// the attempt's RUNNING report: the attempt is no longer the worker's to run (it timed out, was
// cancelled, or the worker lost it), so the handler should stop. The runner reports nothing
// final for it; the source frees its slot. [Task.Finish] returns an error that is ErrNotStarted
// for such an attempt.
var ErrNotStarted = errors.New("agl: the server refused to start the attempt")

// Error is a call to agl-server that failed: what the client was doing and the gRPC status the
// server (or the transport) gave. [status.Code] and [status.FromError] see through it.
type Error struct {
	// Op says what was being done, e.g. `dequeue a rollout for worker "w1"`.
	Op string
	// Address is the server's address.
	Address string
	// Err is the gRPC status error.
	Err error
}

func (e *Error) Error() string {
	st, _ := status.FromError(e.Err)
	msg := fmt.Sprintf("agl: %s: %s: %s", e.Op, st.Code(), st.Message())
	switch st.Code() {
	case codes.Unavailable:
		port := e.Address
		if _, p, err := net.SplitHostPort(e.Address); err == nil {
			port = p
		}
		msg += fmt.Sprintf(" (agl-server at %s is not reachable: start it with `agl-server --port %s`, "+
			"or point AGL_SERVER_ADDRESS at a running one)", e.Address, port)
	case codes.Unauthenticated:
		msg += " (set the token with AGL_TOKEN or agl.WithToken)"
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// GRPCStatus makes [status.FromError] and [status.Code] return the server's status.
func (e *Error) GRPCStatus() *status.Status {
	st, _ := status.FromError(e.Err)
	return st
}

func (c *Client) wrap(err error, format string, args ...any) error {
	return &Error{Op: fmt.Sprintf(format, args...), Address: c.address, Err: err}
}

// ItemErrors reports the items of a batch that failed while the rest succeeded (partial success).
type ItemErrors struct {
	What  string
	Items []*aglv1.ItemError
}

func (e *ItemErrors) Error() string {
	parts := make([]string, 0, len(e.Items))
	for _, item := range e.Items {
		parts = append(parts, fmt.Sprintf("[%d] %s: %s", item.GetIndex(), codes.Code(item.GetCode()), item.GetMessage()))
	}
	return fmt.Sprintf("agl: %s: %d items failed: %s", e.What, len(e.Items), strings.Join(parts, "; "))
}

func isEOF(err error) bool { return errors.Is(err, io.EOF) }
