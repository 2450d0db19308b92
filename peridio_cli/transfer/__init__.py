"""Moving bytes, one module a job: limits (part sizes, chunk, workers, retries), hashing,
upload (parts in parallel, retried, resumable), waiting (completing an upload and waiting for
the server's verification) and download (with resume).

Memory stays bounded whatever the file size: the file is read in 1 MiB chunks (hashing) or
with os.pread of 1 MiB at a time straight into the request body (uploading), so each worker
holds about one chunk, never a part and never the file.
"""
