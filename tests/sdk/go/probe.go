// A program written as a user of the Go v2 AWS SDK would write it:
// config.LoadDefaultConfig with nothing passed in but path-style addressing (region,
// credentials and endpoint come from the environment and the files it names: the config's
// `endpoint_url` or AWS_ENDPOINT_URL), then S3 calls. Driven by
// tests/it/rgw_sdk.rs; the same modes and output as tests/sdk/rust:
//
// `round-trip`: creates S3_BUCKET first when S3_CREATE_BUCKET is 1, puts S3_BODY under
// S3_KEY in S3_BUCKET, lists the bucket and finds it, reads it back. `long-running`:
// puts and gets objects under S3_KEY/ until the calls have been signed with WANTED_KEYS
// different access keys and MIN_SECONDS have passed, or GIVE_UP_SECONDS pass.
// Either prints {"calls": N, "keys": [...], "endpoints": [...], "seconds": S} (keys: the
// access key that signed each call, read from its Authorization header; endpoints: the
// scheme://host[:port] each call was sent to). An S3 error prints its code and exits 3;
// any other failure exits 1.
//
// Built with the modules pinned in go.mod (aws-sdk-go-v2 config v1.21.0 and service/s3
// v1.42.0, of 2023-11-01, were the first to read `endpoint_url` and AWS_ENDPOINT_URL).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

var credential = regexp.MustCompile(`Credential=([^/]+)/`)

func env(name string) string {
	value, ok := os.LookupEnv(name)
	if !ok {
		fail(fmt.Errorf("%s is not set", name))
	}
	return value
}

// fail exits 3 with S3's error code, or 1 with the error.
func fail(err error) {
	var api smithy.APIError
	if errors.As(err, &api) {
		fmt.Println(api.ErrorCode())
		os.Exit(3)
	}
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}

func main() {
	ctx := context.Background()
	mode := ""
	if len(os.Args) > 1 {
		mode = os.Args[1]
	}
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		fail(err)
	}
	var keys, endpoints []string
	// At the end of the finalize step, after signing: the request here is the one sent.
	signedWith := middleware.FinalizeMiddlewareFunc("SignedWith", func(
		ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler,
	) (middleware.FinalizeOutput, middleware.Metadata, error) {
		key, endpoint := "unsigned", "unknown"
		if req, ok := in.Request.(*smithyhttp.Request); ok {
			if m := credential.FindStringSubmatch(req.Header.Get("Authorization")); m != nil {
				key = m[1]
			}
			endpoint = req.URL.Scheme + "://" + req.URL.Host
		}
		keys = append(keys, key)
		endpoints = append(endpoints, endpoint)
		return next.HandleFinalize(ctx, in)
	})
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.UsePathStyle = true
		o.APIOptions = append(o.APIOptions, func(stack *middleware.Stack) error {
			return stack.Finalize.Add(signedWith, middleware.After)
		})
	})
	bucket := env("S3_BUCKET")
	start := time.Now()
	calls := 0
	put := func(key, body string) {
		_, err := client.PutObject(ctx, &s3.PutObjectInput{
			Bucket: &bucket, Key: &key, Body: strings.NewReader(body),
		})
		if err != nil {
			fail(err)
		}
	}
	get := func(key, body string) {
		got, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: &bucket, Key: &key})
		if err != nil {
			fail(err)
		}
		text, err := io.ReadAll(got.Body)
		got.Body.Close()
		if err != nil {
			fail(err)
		}
		if string(text) != body {
			fail(fmt.Errorf("read back %q", text))
		}
	}
	distinct := func() int {
		seen := map[string]bool{}
		for _, k := range keys {
			seen[k] = true
		}
		return len(seen)
	}
	switch mode {
	case "round-trip":
		key, body := env("S3_KEY"), env("S3_BODY")
		if os.Getenv("S3_CREATE_BUCKET") == "1" {
			if _, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &bucket}); err != nil {
				fail(err)
			}
			calls++
		}
		put(key, body)
		delimiter := "/"
		listed, err := client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{
			Bucket: &bucket, Prefix: &key, Delimiter: &delimiter,
		})
		if err != nil {
			fail(err)
		}
		if len(listed.Contents) != 1 || *listed.Contents[0].Key != key {
			fail(fmt.Errorf("the listing has %d objects, not %s", len(listed.Contents), key))
		}
		get(key, body)
		calls += 3
	case "long-running":
		prefix := env("S3_KEY")
		wanted, err := strconv.Atoi(env("WANTED_KEYS"))
		if err != nil {
			fail(err)
		}
		seconds := func(name string) time.Duration {
			n, err := strconv.Atoi(env(name))
			if err != nil {
				fail(err)
			}
			return time.Duration(n) * time.Second
		}
		min, giveUp := seconds("MIN_SECONDS"), seconds("GIVE_UP_SECONDS")
		done := func() bool { return distinct() >= wanted && time.Since(start) >= min }
		for !done() && time.Since(start) < giveUp {
			key, body := fmt.Sprintf("%s/%d", prefix, calls), time.Now().String()
			put(key, body)
			get(key, body)
			calls += 2
			time.Sleep(200 * time.Millisecond)
		}
	default:
		fail(fmt.Errorf("unknown mode %q: round-trip or long-running", mode))
	}
	report, _ := json.Marshal(map[string]interface{}{
		"calls": calls, "keys": keys, "endpoints": endpoints,
		"seconds": time.Since(start).Seconds(),
	})
	fmt.Println(string(report))
}
