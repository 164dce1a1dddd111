-- wrk's summary as one line of JSON, for bench/load.py. Every scenario
-- script loads this; `created` and `ok` count 201 and 2xx answers where the
-- scenario counts them (writes.lua), across all threads.
local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function done(summary, latency, requests)
  local created, ok = 0, 0
  for _, thread in ipairs(threads) do
    created = created + (thread:get("created") or 0)
    ok = ok + (thread:get("ok") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"status_errors":%d,' ..
    '"socket_errors":%d,"timeouts":%d,"created":%d,"ok":%d,' ..
    '"mean_us":%.1f,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, summary.bytes, e.status,
    e.connect + e.read + e.write, e.timeout, created, ok,
    latency.mean, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max))
end
