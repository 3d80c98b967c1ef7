// A program written as a user of the JavaScript v3 AWS SDK would write it: `new
// S3Client({})` with nothing passed in but path-style addressing (region, credentials
// and endpoint come from the environment and the files it names), then S3 calls.
// Driven by tests/it/rgw_sdk.rs; the same modes and output as tests/sdk/rust:
//
// `round-trip`: creates S3_BUCKET first when S3_CREATE_BUCKET is 1, puts S3_BODY under
// S3_KEY in S3_BUCKET, lists the bucket and finds it, reads it back. `long-running`:
// puts and gets objects under S3_KEY/ until the calls have been signed with WANTED_KEYS
// different access keys and MIN_SECONDS have passed, or GIVE_UP_SECONDS pass.
// Either prints {"calls": N, "keys": [...], "seconds": S} (keys: the access key that
// signed each call, read from its Authorization header). An S3 error prints its code and
// exits 3; any other failure exits 1.
"use strict";
const {
  S3Client,
  CreateBucketCommand,
  PutObjectCommand,
  GetObjectCommand,
  ListObjectsV2Command,
} = require("@aws-sdk/client-s3");

const env = (name) => {
  const value = process.env[name];
  if (value === undefined) throw new Error(`${name} is not set`);
  return value;
};

async function main() {
  const mode = process.argv[2];
  const s3 = new S3Client({ forcePathStyle: true });
  const keys = [];
  // The deserialize step runs after signing: the request here is the one sent.
  s3.middlewareStack.add(
    (next) => async (args) => {
      const auth = args.request.headers.authorization || "";
      const match = /Credential=([^/]+)\//.exec(auth);
      keys.push(match ? match[1] : "unsigned");
      return next(args);
    },
    { step: "deserialize", name: "signedWith" },
  );
  const bucket = env("S3_BUCKET");
  const start = Date.now();
  let calls = 0;
  const putGet = async (key, body) => {
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
    const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    const text = await got.Body.transformToString();
    if (text !== body) throw new Error(`read back ${JSON.stringify(text)}`);
  };
  if (mode === "round-trip") {
    const key = env("S3_KEY");
    const body = env("S3_BODY");
    if (process.env.S3_CREATE_BUCKET === "1") {
      await s3.send(new CreateBucketCommand({ Bucket: bucket }));
      calls += 1;
    }
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
    const listed = await s3.send(
      new ListObjectsV2Command({ Bucket: bucket, Prefix: key, Delimiter: "/" }),
    );
    const names = (listed.Contents || []).map((o) => o.Key);
    if (JSON.stringify(names) !== JSON.stringify([key])) {
      throw new Error(`the listing: ${JSON.stringify(names)}`);
    }
    const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    const text = await got.Body.transformToString();
    if (text !== body) throw new Error(`read back ${JSON.stringify(text)}`);
    calls += 3;
  } else if (mode === "long-running") {
    const prefix = env("S3_KEY");
    const wanted = Number(env("WANTED_KEYS"));
    const min = Number(env("MIN_SECONDS")) * 1000;
    const giveUp = Number(env("GIVE_UP_SECONDS")) * 1000;
    const done = () => new Set(keys).size >= wanted && Date.now() - start >= min;
    while (!done() && Date.now() - start < giveUp) {
      await putGet(`${prefix}/${calls}`, `${calls} ${Date.now()}`);
      calls += 2;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  } else {
    throw new Error(`unknown mode ${mode}: round-trip or long-running`);
  }
  console.log(JSON.stringify({ calls, keys, seconds: (Date.now() - start) / 1000 }));
}

main().catch((error) => {
  if (error.$metadata && error.name) {
    console.log(error.Code || error.name);
    process.exit(3);
  }
  console.error(String(error && error.stack ? error.stack : error));
  process.exit(1);
});
