package agl

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/protobuf/types/known/durationpb"

	aglv1 "github.com/agl-dev/agl/clients/go/gen/agl/v1"
)

const (
	// DefaultAddress is where agl-server listens unless told otherwise.
	DefaultAddress = "127.0.0.1:4747"
	// ServiceName is the full name of the store service.
	ServiceName = "agl.v1.LightningStoreService"
	// maxMessageBytes matches the Python client: large resources and span batches fit.
	maxMessageBytes = 64 << 20
)

// DefaultAddressFromEnv is $AGL_SERVER_ADDRESS, or DefaultAddress when it is unset.
func DefaultAddressFromEnv() string {
	if address := os.Getenv("AGL_SERVER_ADDRESS"); address != "" {
		return address
	}
	return DefaultAddress
}

type options struct {
	token       string
	tls         *tls.Config
	timeout     time.Duration
	retries     int
	dialOptions []grpc.DialOption
	spanOptions []SpanStreamOption
}

// An Option configures a Client.
type Option func(*options)

// WithToken sends "authorization: Bearer <token>" on every call (agl-server --token).
func WithToken(token string) Option { return func(o *options) { o.token = token } }

// WithTLS connects over TLS with the given configuration (nil RootCAs: the system roots).
func WithTLS(config *tls.Config) Option {
	return func(o *options) {
		if config == nil {
			config = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		o.tls = config
	}
}

// WithTimeout sets the deadline of calls whose context has none (default 30s). Long polls get
// their wait on top of it.
func WithTimeout(timeout time.Duration) Option { return func(o *options) { o.timeout = timeout } }

// WithRetries sets how many times in all a call that fails with UNAVAILABLE is tried (default 5,
// at most 5: gRPC's limit), with exponential backoff from 100ms to 2s.
func WithRetries(attempts int) Option { return func(o *options) { o.retries = attempts } }

// WithDialOptions adds raw gRPC dial options (interceptors, stats handlers, ...).
func WithDialOptions(dialOptions ...grpc.DialOption) Option {
	return func(o *options) { o.dialOptions = append(o.dialOptions, dialOptions...) }
}

// WithSpanStreamOptions configures the client's span stream (see [Client.Spans]).
func WithSpanStreamOptions(spanOptions ...SpanStreamOption) Option {
	return func(o *options) { o.spanOptions = append(o.spanOptions, spanOptions...) }
}

// Client talks to one agl-server. It is safe for concurrent use; make one per process and share it.
type Client struct {
	address string
	opts    options
	conn    *grpc.ClientConn
	store   aglv1.LightningStoreServiceClient

	spansOnce sync.Once
	spans     *SpanStream
}

// NewClient prepares a connection to the agl-server at address ("host:port"). Like
// [grpc.NewClient] it does not connect yet: the first call does, and calls made while the server
// is unreachable are retried (see [WithRetries]) before they fail with UNAVAILABLE.
func NewClient(address string, opts ...Option) (*Client, error) {
	if address == "" {
		address = DefaultAddressFromEnv()
	}
	o := options{token: os.Getenv("AGL_TOKEN"), timeout: 30 * time.Second, retries: 5}
	for _, opt := range opts {
		opt(&o)
	}
	if o.retries < 1 {
		return nil, fmt.Errorf("agl: WithRetries(%d): a call is tried at least once", o.retries)
	}
	creds := insecure.NewCredentials()
	if o.tls != nil {
		creds = credentials.NewTLS(o.tls)
	}
	dial := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultServiceConfig(serviceConfig(o.retries)),
		grpc.WithDefaultCallOptions(
			grpc.MaxCallRecvMsgSize(maxMessageBytes),
			grpc.MaxCallSendMsgSize(maxMessageBytes),
		),
		// Keepalive pings notice a dead server on an idle stream (a long poll, the span stream).
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		// A restarted server is found again within seconds: gRPC's default backoff between
		// connection attempts grows to 2 minutes, longer than the reconnect timeouts of the span
		// and Work streams, so a server back after a minute would be seen too late.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 5 * time.Second},
			MinConnectTimeout: 10 * time.Second,
		}),
		grpc.WithChainUnaryInterceptor(defaultDeadline(o.timeout)),
	}
	if o.token != "" {
		dial = append(dial, grpc.WithPerRPCCredentials(bearerToken{token: o.token}))
	}
	dial = append(dial, o.dialOptions...)
	conn, err := grpc.NewClient(address, dial...)
	if err != nil {
		return nil, fmt.Errorf("agl: cannot use the address %q: %w", address, err)
	}
	return &Client{address: address, opts: o, conn: conn, store: aglv1.NewLightningStoreServiceClient(conn)}, nil
}

// Address is the server address the client was made for.
func (c *Client) Address() string { return c.address }

// Store is the generated client, for calls this package does not wrap.
func (c *Client) Store() aglv1.LightningStoreServiceClient { return c.store }

// Conn is the underlying gRPC connection (to build clients of other agl services on it).
func (c *Client) Conn() *grpc.ClientConn { return c.conn }

// Spans is the client's span stream, opened on first use and shared by all its users.
func (c *Client) Spans() *SpanStream {
	c.spansOnce.Do(func() { c.spans = NewSpanStream(c, c.opts.spanOptions...) })
	return c.spans
}

// Close flushes the span stream (waiting at most until ctx ends) and closes the connection.
// Spans still unacknowledged then are reported as failed to whoever waits for them.
func (c *Client) Close(ctx context.Context) error {
	var err error
	if c.spans != nil {
		err = c.spans.Close(ctx)
	}
	if cerr := c.conn.Close(); err == nil {
		err = cerr
	}
	return err
}

// EnqueueRollouts adds rollouts to the queue. Items succeed or fail on their own: the result has
// one entry per spec (nil where it failed) and the error, if any, is an [*ItemErrors] listing the
// failed items.
func (c *Client) EnqueueRollouts(ctx context.Context, specs ...*aglv1.RolloutSpec) ([]*aglv1.Rollout, error) {
	resp, err := c.store.EnqueueRollouts(ctx, &aglv1.EnqueueRolloutsRequest{Rollouts: specs})
	if err != nil {
		return nil, c.wrap(err, "enqueue %d rollouts", len(specs))
	}
	rollouts := resp.GetRollouts()
	for i, rollout := range rollouts {
		if rollout.GetRolloutId() == "" {
			rollouts[i] = nil
		}
	}
	if len(resp.GetErrors()) > 0 {
		return rollouts, &ItemErrors{What: "enqueue rollouts", Items: resp.GetErrors()}
	}
	return rollouts, nil
}

// DequeueRollout claims the oldest queued rollout for workerID, with a new attempt (in
// rollout.Attempt). When the queue is empty it waits up to wait for work (a long poll) and returns
// nil, nil if none came.
func (c *Client) DequeueRollout(ctx context.Context, workerID string, wait time.Duration) (*aglv1.Rollout, error) {
	req := &aglv1.DequeueRolloutRequest{WorkerId: workerID, Limit: 1}
	if wait > 0 {
		req.Wait = durationpb.New(wait)
		// The server answers just before the deadline, so the long poll gets the wait plus the
		// usual time for the answer.
		if _, ok := ctx.Deadline(); !ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, wait+c.opts.timeout)
			defer cancel()
		}
	}
	resp, err := c.store.DequeueRollout(ctx, req)
	if err != nil {
		return nil, c.wrap(err, "dequeue a rollout for worker %q", workerID)
	}
	if len(resp.GetRollouts()) == 0 {
		return nil, nil
	}
	return resp.GetRollouts()[0], nil
}

// GetRollout returns the rollout with its latest attempt.
func (c *Client) GetRollout(ctx context.Context, rolloutID string) (*aglv1.Rollout, error) {
	resp, err := c.store.GetRollout(ctx, &aglv1.GetRolloutRequest{RolloutId: rolloutID})
	if err != nil {
		return nil, c.wrap(err, "get rollout %q", rolloutID)
	}
	return resp.GetRollout(), nil
}

// UpdateAttempt sets the status of an attempt ("latest" names the rollout's latest one). Finishing
// an attempt (SUCCEEDED, FAILED) decides the rollout's status; send the attempt's spans first
// (see [Task.Finish], which does both).
func (c *Client) UpdateAttempt(
	ctx context.Context, rolloutID, attemptID string, status aglv1.AttemptStatus,
) (*aglv1.Attempt, error) {
	resp, err := c.store.UpdateAttempt(ctx, &aglv1.UpdateAttemptRequest{
		RolloutId: rolloutID, AttemptId: attemptID, Status: &status,
	})
	if err != nil {
		return nil, c.wrap(err, "set attempt %q of rollout %q to %s", attemptID, rolloutID, statusName(status))
	}
	return resp.GetAttempt(), nil
}

// AddResources stores a new resources set and makes it the latest. An empty resourcesID lets the
// server pick one.
func (c *Client) AddResources(
	ctx context.Context, resourcesID string, resources map[string]*aglv1.Resource,
) (*aglv1.ResourcesUpdate, error) {
	resp, err := c.store.AddResources(ctx, &aglv1.AddResourcesRequest{ResourcesId: resourcesID, Resources: resources})
	if err != nil {
		return nil, c.wrap(err, "add resources %q", resourcesID)
	}
	return resp.GetResources(), nil
}

// GetResources returns a resources set; an empty resourcesID returns the latest one.
func (c *Client) GetResources(ctx context.Context, resourcesID string) (*aglv1.ResourcesUpdate, error) {
	resp, err := c.store.GetResources(ctx, &aglv1.GetResourcesRequest{ResourcesId: resourcesID})
	if err != nil {
		if resourcesID == "" {
			return nil, c.wrap(err, "get the latest resources")
		}
		return nil, c.wrap(err, "get resources %q", resourcesID)
	}
	return resp.GetResources(), nil
}

// WaitForRollouts blocks until all the rollouts are terminal or timeout passes, and returns the
// terminal ones (in request order) and the ids still pending.
func (c *Client) WaitForRollouts(
	ctx context.Context, rolloutIDs []string, timeout time.Duration,
) ([]*aglv1.Rollout, []string, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout+c.opts.timeout)
		defer cancel()
	}
	resp, err := c.store.WaitForRollouts(ctx, &aglv1.WaitForRolloutsRequest{
		RolloutIds: rolloutIDs, Timeout: durationpb.New(timeout),
	})
	if err != nil {
		return nil, nil, c.wrap(err, "wait for %d rollouts", len(rolloutIDs))
	}
	return resp.GetRollouts(), resp.GetPendingRolloutIds(), nil
}

// QuerySpans returns the stored spans of a rollout in sequence order. attemptID is an attempt id,
// "latest", or empty for all attempts.
func (c *Client) QuerySpans(ctx context.Context, rolloutID, attemptID string) ([]*aglv1.Span, error) {
	stream, err := c.store.QuerySpans(ctx, &aglv1.QuerySpansRequest{RolloutId: rolloutID, AttemptId: attemptID})
	if err != nil {
		return nil, c.wrap(err, "query the spans of rollout %q", rolloutID)
	}
	var spans []*aglv1.Span
	for {
		resp, err := stream.Recv()
		if err != nil {
			if isEOF(err) {
				return spans, nil
			}
			return nil, c.wrap(err, "query the spans of rollout %q", rolloutID)
		}
		spans = append(spans, resp.GetSpans()...)
	}
}

// serviceConfig retries calls that fail with UNAVAILABLE (server down, restarting, overloaded).
// Calls that create things are safe to retry: rollouts with client-chosen ids and spans with
// their ids are deduplicated by the server.
func serviceConfig(attempts int) string {
	attempts = max(2, min(attempts, 5))
	config := map[string]any{
		"methodConfig": []any{map[string]any{
			"name": []any{map[string]any{"service": ServiceName}},
			"retryPolicy": map[string]any{
				"maxAttempts":          attempts,
				"initialBackoff":       "0.1s",
				"maxBackoff":           "2s",
				"backoffMultiplier":    2,
				"retryableStatusCodes": []string{"UNAVAILABLE"},
			},
		}},
	}
	raw, err := json.Marshal(config)
	if err != nil {
		panic(err) // a constant structure: cannot fail
	}
	return string(raw)
}

// defaultDeadline gives unary calls without a deadline the client's default timeout, so no call
// hangs forever on a stuck network.
func defaultDeadline(timeout time.Duration) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn,
		invoker grpc.UnaryInvoker, opts ...grpc.CallOption,
	) error {
		if _, ok := ctx.Deadline(); !ok && timeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, timeout)
			defer cancel()
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
}

type bearerToken struct{ token string }

func (b bearerToken) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + b.token}, nil
}

// RequireTransportSecurity is false so a token also works on plaintext loopback deployments,
// as with the Python client; use WithTLS anywhere the network is not trusted.
func (b bearerToken) RequireTransportSecurity() bool { return false }

func statusName(status aglv1.AttemptStatus) string {
	return strings.ToLower(strings.TrimPrefix(status.String(), "ATTEMPT_STATUS_"))
}

// retryable reports whether a failed stream may succeed when opened again.
func retryable(code codes.Code) bool {
	switch code {
	case codes.Unavailable, codes.Unknown, codes.Internal, codes.DeadlineExceeded, codes.Aborted:
		return true
	}
	return false
}
