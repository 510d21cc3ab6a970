// Command agl-ackfloor serves agl.v1.LightningStoreService/IngestSpans and nothing else: it parses
// each IngestSpansRequest whole (grpc-go's unmarshal, UTF-8 checks included) and acks it with its
// batch id and every span accepted, storing nothing. It is a floor for bench/store_bench.py
// (--ack-only --go-client): agl-loadgen's span-ack writers run against it unchanged, so their ack
// latency here is what a compiled Go front end would cost before any store work. Every other
// method answers UNIMPLEMENTED.
//
// It listens on 127.0.0.1 on a free port and writes the port to the file given by -port-file.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"

	aglv1 "github.com/agl-dev/agl/clients/go/gen/agl/v1"
	"google.golang.org/grpc"
)

type ackOnly struct {
	aglv1.UnimplementedLightningStoreServiceServer
}

func (ackOnly) IngestSpans(stream aglv1.LightningStoreService_IngestSpansServer) error {
	for {
		request, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		ack := &aglv1.IngestSpansResponse{BatchId: request.GetBatchId(), Accepted: int32(len(request.GetSpans()))}
		if err := stream.Send(ack); err != nil {
			return err
		}
	}
}

func main() {
	portFile := flag.String("port-file", "", "write the port listened on to this file (required)")
	// grpc-go starts a goroutine per stream unless it has workers; a pool as large as the CPUs gave
	// the lowest ack latency on the 2-core machine the bench runs on (eight writers' p99
	// 6.0-7.8 ms in five runs, against 8.1-8.2 ms in four without).
	workers := flag.Int("stream-workers", runtime.NumCPU(), "grpc.NumStreamWorkers; 0: a goroutine per stream")
	flag.Parse()
	if *portFile == "" {
		fmt.Fprintln(os.Stderr, "agl-ackfloor: -port-file is required")
		os.Exit(2)
	}
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "agl-ackfloor:", err)
		os.Exit(1)
	}
	options := []grpc.ServerOption{grpc.MaxRecvMsgSize(64 << 20)}
	if *workers > 0 {
		options = append(options, grpc.NumStreamWorkers(uint32(*workers)))
	}
	server := grpc.NewServer(options...)
	aglv1.RegisterLightningStoreServiceServer(server, ackOnly{})
	port := listener.Addr().(*net.TCPAddr).Port
	// Written whole and renamed, so a reader polling the file never sees half a number.
	if err := os.WriteFile(*portFile+".tmp", []byte(fmt.Sprint(port)), 0o644); err == nil {
		err = os.Rename(*portFile+".tmp", *portFile)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "agl-ackfloor: cannot write the port file:", err)
		os.Exit(1)
	}
	if err := server.Serve(listener); err != nil {
		fmt.Fprintln(os.Stderr, "agl-ackfloor:", err)
		os.Exit(1)
	}
}
