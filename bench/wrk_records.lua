-- wrk script for bench/bench_http.py: POST bodies of distinct records, and a JSON summary at the end.
--
-- Environment (set by bench_http.py):
--   BENCH_PATH   the path to POST to (/v1/records, or the no-op peer's /noop)
--   BENCH_BATCH  records per request: 1 sends one JSON object, N > 1 a JSON array of N objects
--   BENCH_TOKEN  the bearer token (the no-op peer ignores it)
--   BENCH_RUN    a number that makes this run's records differ from earlier runs' (0..99999999)
--
-- Every record is distinct: its content carries (run, wrk thread, per-thread counter). The kinds
-- cycle through artifact, generation, safety_decision (a float risk score) and distribution.
-- At the end `done` prints one line "BENCH_JSON {...}" with wrk's own counts and latency
-- percentiles (microseconds), which bench_http.py parses.

local path = os.getenv("BENCH_PATH") or "/v1/records"
local batch = tonumber(os.getenv("BENCH_BATCH") or "1")
local token = os.getenv("BENCH_TOKEN") or ""
local run = tonumber(os.getenv("BENCH_RUN") or "0")

local threads = {}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

local counter = 0
local headers = {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token}

local function record(n)
  local uniq = string.format("%08d%04d%052d", run, tid, n)  -- 64 decimal digits: valid lowercase hex
  local m = n % 4
  if m == 0 then
    return '{"kind":"artifact","producer":"svc:bench","produced_at":"2026-11-25T12:00:00Z","body":{"sha256":"'
      .. uniq .. '","media_type":"image/png","size":' .. n .. ',"storage_ref":"blob://bench/' .. uniq .. '"}}'
  elseif m == 1 then
    return '{"kind":"generation","producer":"svc:imagine","produced_at":"2026-11-25T12:00:00Z","body":'
      .. '{"surface":"imagine","parameters":{"steps":30,"width":1024,"job":"' .. uniq .. '"},"seed":' .. n .. '}}'
  elseif m == 2 then
    return '{"kind":"safety_decision","producer":"svc:safety","produced_at":"2026-11-25T12:00:00Z","body":'
      .. '{"action":"allow","policy_id":"content-safety","policy_version":"2025-11","pipeline_version":"filter-4",'
      .. '"risk":0.' .. string.format("%04d", n % 9973 + 1) .. ',"signals":{"nudity":0.125,"job":"' .. uniq .. '"}}}'
  else
    return '{"kind":"distribution","producer":"svc:timeline","produced_at":"2026-11-25T12:00:00Z","body":'
      .. '{"action":"publish","channel":"timeline","post":"' .. uniq .. '"}}'
  end
end

function request()
  local body
  if batch <= 1 then
    counter = counter + 1
    body = record(counter)
  else
    local parts = {}
    for i = 1, batch do
      counter = counter + 1
      parts[i] = record(counter)
    end
    body = "[" .. table.concat(parts, ",") .. "]"
  end
  return wrk.format("POST", path, headers, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,'
      .. '"mean_us":%.1f,"errors_connect":%d,"errors_read":%d,"errors_write":%d,"errors_status":%d,"errors_timeout":%d}\n',
    summary.requests, summary.duration, summary.bytes, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean, e.connect, e.read, e.write, e.status, e.timeout))
end
