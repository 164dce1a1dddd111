-- Writes, each to a row of its own, counting the answers:
--   -- users <token> <run>         POST /api/users, a new user each time
--   -- members <token> <threads> <first_space> <spaces> <first_user>
--                                  PUT /api/spaces/S/members/U: thread t
--                                  takes pairs t, t+threads, ...; pair k is
--                                  space first_space + k % spaces and user
--                                  first_user + floor(k / spaces), so no pair is
--                                  written twice.
dofile("bench/wrk/summary.lua")

function init(args)
  mode, n, created, ok = args[1], 0, 0, 0
  headers = {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. args[2],
  }
  if mode == "users" then
    run = args[3]
  else
    nthreads, first_space, spaces, first_user =
      tonumber(args[3]), tonumber(args[4]), tonumber(args[5]), tonumber(args[6])
  end
end

function request()
  n = n + 1
  if mode == "users" then
    local name = string.format("%s_%d_%d", run, id, n)
    return wrk.format("POST", "/api/users", headers,
      string.format('{"username":"%s","email":"%s@bench.test"}', name, name))
  end
  local k = id + (n - 1) * nthreads
  local path = string.format("/api/spaces/%d/members/%d",
    first_space + k % spaces, first_user + math.floor(k / spaces))
  return wrk.format("PUT", path, headers, '{"role":"contributor"}')
end

function response(status, headers, body)
  if status == 201 then created = created + 1 end
  if status >= 200 and status < 300 then ok = ok + 1 end
end
