-- wrk script: POST /v1/events:batch, cycling through pre-built 1000-event bodies
-- (one JSON array per line of the file in TIERSTREAM_BENCH_BODIES); counts every non-202.
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  failures = 0
  bodies = {}
  for line in io.lines(os.getenv("TIERSTREAM_BENCH_BODIES")) do
    table.insert(bodies, line)
  end
  next_body = 0
  wrk.method = "POST"
  wrk.headers["Authorization"] = "Bearer " .. os.getenv("TIERSTREAM_BENCH_KEY")
  wrk.headers["Content-Type"] = "application/cloudevents-batch+json"
end

function request()
  next_body = next_body % #bodies + 1
  return wrk.format(nil, nil, nil, bodies[next_body])
end

function response(status, headers, body)
  if status ~= 202 then failures = failures + 1 end
end

function done(summary, latency, requests)
  local failed = 0
  for _, thread in ipairs(threads) do failed = failed + thread:get("failures") end
  io.write(string.format("RESULT requests=%d seconds=%.3f failures=%d p50_ms=%.2f p99_ms=%.2f\n",
    summary.requests, summary.duration / 1e6, failed,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
