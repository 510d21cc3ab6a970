package agl

import (
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"

	aglv1 "github.com/agl-dev/agl/clients/go/gen/agl/v1"
	"github.com/agl-dev/agl/clients/go/internal/wirecodec"
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
	token         string
	tls           *tls.Config
	timeout       time.Duration
	retryDeadline time.Duration
	dialOptions   []grpc.DialOption
	spanOptions   []SpanStreamOption
	namespace     string
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

// WithRetryDeadline sets how long calls and streams keep retrying through an outage before they
// fail (default [DefaultRetryDeadline]; 0 never retries). See docs/retry.md for what is retried.
func WithRetryDeadline(d time.Duration) Option { return func(o *options) { o.retryDeadline = d } }

// WithDialOptions adds raw gRPC dial options (interceptors, stats handlers, ...).
func WithDialOptions(dialOptions ...grpc.DialOption) Option {
	return func(o *options) { o.dialOptions = append(o.dialOptions, dialOptions...) }
}

// WithNamespace scopes the client to a namespace (an experiment): the rollouts it enqueues and
// dequeues, the resources it adds and reads ("latest" is per namespace) and the Work streams it
// opens belong to it, and it sees nothing of other namespaces. Default: $AGL_NAMESPACE, or the
// server's "default". A name is 1 to 63 of a-z, 0-9, '.', '_', '-', starting with a letter or
// digit; the server answers INVALID_ARGUMENT to anything else.
func WithNamespace(namespace string) Option { return func(o *options) { o.namespace = namespace } }

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
	spans   *sharedSpans // shared with the client's namespace views
}

// sharedSpans is a client's span stream, opened on first use; spans name their rollout, so one
// stream serves every namespace.
type sharedSpans struct {
	once   sync.Once
	stream *SpanStream
}

// NewClient prepares a connection to the agl-server at address ("host:port"). Like
// [grpc.NewClient] it does not connect yet: the first call does, and calls made while the server
// is unreachable are retried (see [WithRetryDeadline]) before they fail with UNAVAILABLE.
func NewClient(address string, opts ...Option) (*Client, error) {
	if address == "" {
		address = DefaultAddressFromEnv()
	}
	o := options{
		token: os.Getenv("AGL_TOKEN"), namespace: os.Getenv("AGL_NAMESPACE"),
		timeout: 30 * time.Second, retryDeadline: DefaultRetryDeadline,
	}
	for _, opt := range opts {
		opt(&o)
	}
	if o.retryDeadline < 0 {
		return nil, fmt.Errorf("agl: WithRetryDeadline(%s): give 0 (no retries) or more", o.retryDeadline)
	}
	creds := insecure.NewCredentials()
	if o.tls != nil {
		creds = credentials.NewTLS(o.tls)
	}
	dial := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		// Retries are the client's own (retry.go): gRPC's retry policy caps attempts at 5 and knows
		// no deadline, so an outage of a few seconds outlasted it.
		grpc.WithDisableRetry(),
		grpc.WithDefaultCallOptions(
			grpc.MaxCallRecvMsgSize(maxMessageBytes),
			grpc.MaxCallSendMsgSize(maxMessageBytes),
			// Generated marshalling, not protobuf's reflection: a sixth of the CPU per span batch.
			wirecodec.CallOption(),
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
		// Outermost first: each try gets the default deadline, the retries the retry deadline.
		grpc.WithChainUnaryInterceptor(retryUnary(o.retryDeadline), defaultDeadline(o.timeout)),
	}
	if o.token != "" {
		dial = append(dial, grpc.WithPerRPCCredentials(bearerToken{token: o.token}))
	}
	dial = append(dial, o.dialOptions...)
	conn, err := grpc.NewClient(address, dial...)
	if err != nil {
		return nil, fmt.Errorf("agl: cannot use the address %q: %w", address, err)
	}
	return &Client{
		address: address, opts: o, conn: conn, store: aglv1.NewLightningStoreServiceClient(conn), spans: &sharedSpans{},
	}, nil
}

// Address is the server address the client was made for.
func (c *Client) Address() string { return c.address }

// Store is the generated client, for calls this package does not wrap.
func (c *Client) Store() aglv1.LightningStoreServiceClient { return c.store }

// Conn is the underlying gRPC connection (to build clients of other agl services on it).
func (c *Client) Conn() *grpc.ClientConn { return c.conn }

// Spans is the client's span stream, opened on first use and shared by all its users.
func (c *Client) Spans() *SpanStream {
	c.spans.once.Do(func() { c.spans.stream = NewSpanStream(c, c.opts.spanOptions...) })
	return c.spans.stream
}

// Close flushes the span stream (waiting at most until ctx ends) and closes the connection.
// Spans still unacknowledged then are reported as failed to whoever waits for them.
func (c *Client) Close(ctx context.Context) error {
	var err error
	if c.spans.stream != nil {
		err = c.spans.stream.Close(ctx)
	}
	if cerr := c.conn.Close(); err == nil {
		err = cerr
	}
	return err
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

func statusName(status aglv1.AttemptStatus) string { return StatusName(status) }

// StatusName is a status or mode by its name: "succeeded" for ROLLOUT_STATUS_SUCCEEDED or
// ATTEMPT_STATUS_SUCCEEDED, "queuing", "train", ...
func StatusName(status fmt.Stringer) string {
	name := status.String()
	for _, prefix := range []string{"ROLLOUT_STATUS_", "ATTEMPT_STATUS_", "WORKER_STATUS_", "ROLLOUT_MODE_"} {
		if strings.HasPrefix(name, prefix) {
			return strings.ToLower(strings.TrimPrefix(name, prefix))
		}
	}
	return strings.ToLower(name)
}
