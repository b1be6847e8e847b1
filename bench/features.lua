-- wrk script: GET /v1/features/{entity} for random demo users u-0 … u-99999.
math.randomseed(42)
request = function()
  return wrk.format("GET", "/v1/features/u-" .. math.random(0, 99999))
end
