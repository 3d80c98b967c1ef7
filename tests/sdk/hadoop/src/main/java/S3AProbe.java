// A program written as a user of Hadoop's S3A connector would write it (what Spark does
// underneath): a Hadoop Configuration read from the core-site.xml given as the only
// argument (fs.s3a.endpoint, path-style access, fs.s3a.aws.credentials.provider), then
// the s3a:// file system. Driven by tests/it/clients_hadoop.rs.
//
// Writes S3_BODY to s3a://S3_BUCKET/S3_KEY, lists its directory and finds it, reads it
// back, and prints {"calls": N, "keys": [...], "seconds": S} (calls: the file system
// operations; keys: the access key that signed each S3 request, read from its
// Authorization header by an interceptor S3A adds to its client). An S3 error prints its
// code and exits 3; any other failure exits 1.

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FSDataInputStream;
import org.apache.hadoop.fs.FSDataOutputStream;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import software.amazon.awssdk.awscore.exception.AwsServiceException;
import software.amazon.awssdk.core.interceptor.Context;
import software.amazon.awssdk.core.interceptor.ExecutionAttributes;
import software.amazon.awssdk.core.interceptor.ExecutionInterceptor;

public final class S3AProbe {
    private static final Pattern CREDENTIAL = Pattern.compile("Credential=([^/]+)/");

    /** The access key of each signed request, in order. */
    static final List<String> KEYS = Collections.synchronizedList(new ArrayList<>());

    /** Records the access key each request was signed with (S3A instantiates it). */
    public static final class SignedWith implements ExecutionInterceptor {
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

    private static String quoted(String text) {
        return "\"" + text.replace("\\", "\\\\").replace("\"", "\\\"") + "\"";
    }

    private static void run(String coreSite) throws IOException {
        Configuration conf = new Configuration();
        conf.addResource(new Path(coreSite));
        conf.set("fs.s3a.audit.execution.interceptors", SignedWith.class.getName());
        String body = env("S3_BODY");
        Path file = new Path("s3a://" + env("S3_BUCKET") + "/" + env("S3_KEY"));
        long start = System.nanoTime();
        try (FileSystem fs = file.getFileSystem(conf)) {
            try (FSDataOutputStream out = fs.create(file, true)) {
                out.write(body.getBytes(StandardCharsets.UTF_8));
            }
            List<String> names = new ArrayList<>();
            for (FileStatus status : fs.listStatus(file.getParent())) {
                names.add(status.getPath().toString());
            }
            if (!names.equals(List.of(file.toString()))) {
                throw new IllegalStateException("the listing: " + names);
            }
            String text;
            try (FSDataInputStream in = fs.open(file)) {
                text = new String(in.readAllBytes(), StandardCharsets.UTF_8);
            }
            if (!text.equals(body)) {
                throw new IllegalStateException("read back " + text);
            }
        }
        List<String> keys = new ArrayList<>();
        for (String k : KEYS) {
            keys.add(quoted(k));
        }
        System.out.println("{\"calls\": 3, \"keys\": [" + String.join(", ", keys)
                + "], \"seconds\": " + (System.nanoTime() - start) / 1e9 + "}");
    }

    public static void main(String[] args) {
        try {
            if (args.length != 1) {
                throw new IllegalArgumentException("usage: S3AProbe CORE-SITE.xml");
            }
            run(args[0]);
        } catch (Exception e) {
            for (Throwable cause = e; cause != null; cause = cause.getCause()) {
                if (cause instanceof AwsServiceException) {
                    System.out.println(((AwsServiceException) cause).awsErrorDetails().errorCode());
                    System.exit(3);
                }
            }
            System.err.println(e);
            for (Throwable cause = e.getCause(); cause != null; cause = cause.getCause()) {
                System.err.println("  caused by: " + cause);
            }
            System.exit(1);
        }
    }
}
