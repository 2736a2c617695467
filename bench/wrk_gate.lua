-- Replays pre-signed requests for bench/wrk_gate.py: each request of the file is sent once.
--
-- The file (path in the environment variable WRK_REQUESTS) holds raw HTTP/1.1 requests,
-- each preceded by a line with its length in bytes. wrk runs one Lua state per thread;
-- thread k of n takes requests k, k+n, k+2n, … so no nonce is sent twice, whichever
-- connection a thread uses. A thread that runs out stops (the Python side sizes the file
-- so that none should); done() prints the figures as one JSON line.

local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("index", counter)
  table.insert(threads, thread)
end

function init(args)
  local count = tonumber(os.getenv("WRK_THREADS"))
  local file = assert(io.open(os.getenv("WRK_REQUESTS"), "rb"))
  local data = file:read("*a")
  file:close()
  mine = {}
  local position, number = 1, 0
  while position <= #data do
    local newline = string.find(data, "\n", position, true)
    local size = tonumber(string.sub(data, position, newline - 1))
    number = number + 1
    if number % count == index - 1 then
      table.insert(mine, string.sub(data, newline + 1, newline + size))
    end
    position = newline + 1 + size
  end
  next_request = 0
  exhausted = 0
end

function request()
  next_request = next_request + 1
  if next_request > #mine then
    exhausted = 1
    wrk.thread:stop()
    next_request = #mine -- sent again only while stopping: counted as a non-2xx by the server's 401
  end
  return mine[next_request]
end

function done(summary, latency, requests)
  local ran_out = 0
  for _, thread in ipairs(threads) do
    ran_out = ran_out + (thread:get("exhausted") or 0)
  end
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "status_errors": %d, "connect_errors": %d, ' ..
    '"read_errors": %d, "write_errors": %d, "timeouts": %d, "p50_us": %d, "p99_us": %d, ' ..
    '"max_us": %d, "mean_us": %.1f, "threads_ran_out": %d}\n',
    summary.requests, summary.duration, summary.errors.status, summary.errors.connect,
    summary.errors.read, summary.errors.write, summary.errors.timeout,
    latency:percentile(50), latency:percentile(99), latency.max, latency.mean, ran_out))
end
