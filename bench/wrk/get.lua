-- GET the URL given to wrk, as fast as it answers (no per-response Lua).
dofile("bench/wrk/summary.lua")
