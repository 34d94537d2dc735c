/** Plain object operations on one bucket under one key prefix, with SDK errors mapped (s3-support.ts). */
import type { Readable } from 'node:stream';
import {
  DeleteObjectCommand, DeleteObjectsCommand, GetObjectCommand, HeadObjectCommand, ListObjectsV2Command,
  PutObjectCommand, type S3Client,
} from '@aws-sdk/client-s3';
import { DataError } from './errors.js';
import { isMissing, mapError, mapLimit, type Source } from './s3-support.js';

export class S3Objects {
  constructor(readonly client: S3Client, readonly bucket: string, readonly prefix: string) {}

  async run<T>(p: Promise<T>, missing?: () => Error): Promise<T> {
    try {
      return await p;
    } catch (err) {
      throw mapError(err, missing);
    }
  }

  k = (key: string): string => this.prefix + key;
  copySource = (key: string): string => `${this.bucket}/${key.split('/').map(encodeURIComponent).join('/')}`;

  /** Size of an object, or null when absent. */
  async head(key: string): Promise<number | null> {
    try {
      return (await this.run(this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key })))).ContentLength ?? 0;
    } catch (err) {
      if (isMissing(err)) return null;
      throw err;
    }
  }
  async open(key: string, missing: () => Error): Promise<Readable> {
    const res = await this.run(this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key })), missing);
    return res.Body as Readable;
  }
  async readBytes(sources: Source[], missing: () => Error): Promise<Buffer[]> {
    const out: Buffer[] = [];
    for (const src of sources) {
      const chunks: Buffer[] = [];
      for await (const c of await this.open(src.key, missing)) chunks.push(c as Buffer);
      const bytes = Buffer.concat(chunks);
      if (bytes.length !== src.size) throw new DataError(`${src.key}: ${bytes.length} bytes stored, ${src.size} recorded`);
      out.push(bytes);
    }
    return out;
  }
  async put(key: string, body: Buffer): Promise<void> {
    await this.run(this.client.send(new PutObjectCommand({
      Bucket: this.bucket, Key: key, Body: body, ContentLength: body.length,
    })));
  }
  async deleteKeys(list: string[]): Promise<void> {
    for (let i = 0; i < list.length; i += 1000) {
      const batch = list.slice(i, i + 1000);
      try {
        const res = await this.run(this.client.send(new DeleteObjectsCommand({
          Bucket: this.bucket, Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true },
        })));
        if (res.Errors?.length) throw new DataError(`S3 DeleteObjects failed for ${res.Errors.length} keys: ${res.Errors[0]?.Code}`);
      } catch (err) {
        if (err instanceof DataError) throw err;
        // Some S3-compatible servers reject batch deletes (e.g. they insist on Content-MD5).
        await mapLimit(batch, 8, (Key) => this.run(this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key }))));
      }
    }
  }
  /** Keys under `prefix`, or with a delimiter the next path segments (without the prefix). */
  async list(prefix: string, delimiter?: '/'): Promise<string[]> {
    const out: string[] = [];
    let token: string | undefined;
    do {
      const res = await this.run(this.client.send(new ListObjectsV2Command({
        Bucket: this.bucket, Prefix: prefix, Delimiter: delimiter, ContinuationToken: token,
      })));
      for (const o of res.Contents ?? []) if (o.Key && !delimiter) out.push(o.Key);
      for (const p of res.CommonPrefixes ?? []) if (p.Prefix) out.push(p.Prefix.slice(prefix.length).replace(/\/$/, ''));
      token = res.IsTruncated ? res.NextContinuationToken : undefined;
    } while (token);
    return out;
  }
}
