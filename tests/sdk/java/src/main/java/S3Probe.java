// A program written as a user of the Java AWS SDK v2 would write it:
// S3Client.builder() with nothing set but path-style addressing (region, credentials and
// endpoint come from the default chains: the environment and the files it names), then
// S3 calls. Driven by tests/it/clients_sdk.rs; the same modes and output as
// tests/sdk/rust:
//
// `round-trip`: creates S3_BUCKET first when S3_CREATE_BUCKET is 1, puts S3_BODY under
// S3_KEY in S3_BUCKET, lists the bucket and finds it, reads it back. `long-running`:
// puts and gets objects under S3_KEY/ until the calls have been signed with WANTED_KEYS
// different access keys and MIN_SECONDS have passed, or GIVE_UP_SECONDS pass.
// Either prints {"calls": N, "keys": [...], "seconds": S, "provider": P} (keys: the
// access key that signed each call, read from its Authorization header; provider: what
// the default credentials chain settled on, the SDK's own names for it joined by commas,
// such as CREDENTIALS_PROFILE_PROCESS,CREDENTIALS_PROCESS). An S3 error prints its code
// and exits 3; any other failure exits 1.

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashSet;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import software.amazon.awssdk.auth.credentials.DefaultCredentialsProvider;
import software.amazon.awssdk.awscore.exception.AwsServiceException;
import software.amazon.awssdk.core.interceptor.Context;
import software.amazon.awssdk.core.interceptor.ExecutionAttributes;
import software.amazon.awssdk.core.interceptor.ExecutionInterceptor;
import software.amazon.awssdk.core.sync.RequestBody;
import software.amazon.awssdk.core.useragent.BusinessMetricFeatureId;
import software.amazon.awssdk.services.s3.S3Client;
import software.amazon.awssdk.services.s3.model.S3Object;

public final class S3Probe {
    private static final Pattern CREDENTIAL = Pattern.compile("Credential=([^/]+)/");

    /** The access key of each signed request, in order. */
    private static final List<String> KEYS = Collections.synchronizedList(new ArrayList<>());

    /** Records the access key each request was signed with, as it leaves. */
    private static final class SignedWith implements ExecutionInterceptor {
        @Override
        public void beforeTransmission(
                Context.BeforeTransmission context, ExecutionAttributes attributes) {
            String auth = context.httpRequest().firstMatchingHeader("Authorization").orElse("");
            Matcher match = CREDENTIAL.matcher(auth);
            KEYS.add(match.find() ? match.group(1) : "unsigned");
        }
    }

    private static String env(String name) {
        String value = System.getenv(name);
        if (value == null) {
            throw new IllegalStateException(name + " is not set");
        }
        return value;
    }

    private static void put(S3Client s3, String bucket, String key, String body) {
        s3.putObject(b -> b.bucket(bucket).key(key), RequestBody.fromString(body));
    }

    private static void getBack(S3Client s3, String bucket, String key, String body) {
        String text = s3.getObjectAsBytes(b -> b.bucket(bucket).key(key))
                .asString(StandardCharsets.UTF_8);
        if (!text.equals(body)) {
            throw new IllegalStateException("read back " + text);
        }
    }

    /**
     * The names of the SDK's codes in a credentials provider name ("v,w" for a profile's
     * credential_process); a code it has no name for is kept as it is.
     */
    private static String named(String codes) {
        List<String> names = new ArrayList<>();
        for (String code : codes.split(",")) {
            String name = code;
            for (BusinessMetricFeatureId id : BusinessMetricFeatureId.values()) {
                if (id.value().equals(code) && id.name().startsWith("CREDENTIALS_")) {
                    name = id.name();
                }
            }
            names.add(name);
        }
        return String.join(",", names);
    }

    private static String quoted(String text) {
        return "\"" + text.replace("\\", "\\\\").replace("\"", "\\\"") + "\"";
    }

    private static void run(String mode) throws InterruptedException {
        S3Client s3 = S3Client.builder()
                .forcePathStyle(true)
                .overrideConfiguration(c -> c.addExecutionInterceptor(new SignedWith()))
                .build();
        String bucket = env("S3_BUCKET");
        long start = System.nanoTime();
        int calls = 0;
        switch (mode) {
            case "round-trip": {
                String key = env("S3_KEY");
                String body = env("S3_BODY");
                if ("1".equals(System.getenv("S3_CREATE_BUCKET"))) {
                    s3.createBucket(b -> b.bucket(bucket));
                    calls++;
                }
                put(s3, bucket, key, body);
                List<String> names = new ArrayList<>();
                for (S3Object o : s3.listObjectsV2(b -> b.bucket(bucket).prefix(key).delimiter("/"))
                        .contents()) {
                    names.add(o.key());
                }
                if (!names.equals(List.of(key))) {
                    throw new IllegalStateException("the listing: " + names);
                }
                getBack(s3, bucket, key, body);
                calls += 3;
                break;
            }
            case "long-running": {
                String prefix = env("S3_KEY");
                int wanted = Integer.parseInt(env("WANTED_KEYS"));
                long min = Long.parseLong(env("MIN_SECONDS")) * 1_000_000_000L;
                long giveUp = Long.parseLong(env("GIVE_UP_SECONDS")) * 1_000_000_000L;
                while (!(new HashSet<>(KEYS).size() >= wanted && System.nanoTime() - start >= min)
                        && System.nanoTime() - start < giveUp) {
                    String key = prefix + "/" + calls;
                    String body = calls + " " + System.currentTimeMillis();
                    put(s3, bucket, key, body);
                    getBack(s3, bucket, key, body);
                    calls += 2;
                    Thread.sleep(200);
                }
                break;
            }
            default:
                throw new IllegalArgumentException(
                        "unknown mode " + mode + ": round-trip or long-running");
        }
        double seconds = (System.nanoTime() - start) / 1e9;
        // The chain the client used, asked again: which provider answers here.
        String provider;
        try (DefaultCredentialsProvider chain = DefaultCredentialsProvider.builder().build()) {
            provider = named(chain.resolveCredentials().providerName().orElse("unnamed"));
        }
        List<String> keys = new ArrayList<>();
        for (String k : KEYS) {
            keys.add(quoted(k));
        }
        System.out.println("{\"calls\": " + calls + ", \"keys\": [" + String.join(", ", keys)
                + "], \"seconds\": " + seconds + ", \"provider\": " + quoted(provider) + "}");
        s3.close();
    }

    public static void main(String[] args) {
        try {
            run(args.length > 0 ? args[0] : "");
        } catch (AwsServiceException e) {
            System.out.println(e.awsErrorDetails().errorCode());
            System.exit(3);
        } catch (Exception e) {
            System.err.println(e);
            for (Throwable cause = e.getCause(); cause != null; cause = cause.getCause()) {
                System.err.println("  caused by: " + cause);
            }
            System.exit(1);
        }
    }
}
