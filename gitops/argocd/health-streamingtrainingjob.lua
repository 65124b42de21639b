-- Argo CD health check for streamtrain.dev/StreamingTrainingJob.
--
-- Reads only what the operator writes through the status subresource:
-- status.phase, status.conditions and status.observedGeneration.
--   Pending, Training, Evaluating     -> Progressing
--   Queued (waiting for Kueue)        -> Progressing, with Kueue's message
--   Online (learning as data arrives) -> Healthy
--   Serving (predicting as data arrives) -> Healthy
--   Succeeded                         -> Healthy
--   Failed, or a Failed condition     -> Degraded
--   Suspended, or spec.runPolicy.suspend set -> Suspended
-- A status older than the spec (observedGeneration behind generation) is
-- Progressing: the operator has not yet acted on the latest change.
local hs = {}

local function condition(status, kind)
  if status == nil or status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local function text(value)
  if value == nil then
    return ""
  end
  return tostring(value)
end

local status = obj.status
local spec = obj.spec or {}
local runPolicy = spec.runPolicy or {}
local generation = obj.metadata and obj.metadata.generation

local failed = condition(status, "Failed")
if (status ~= nil and status.phase == "Failed") or (failed ~= nil and failed.status == "True") then
  hs.status = "Degraded"
  if failed ~= nil and text(failed.message) ~= "" then
    hs.message = failed.message
  else
    hs.message = "The job failed"
  end
  return hs
end

if runPolicy.suspend == true or (status ~= nil and status.phase == "Suspended") then
  hs.status = "Suspended"
  hs.message = "The job is suspended (spec.runPolicy.suspend)"
  return hs
end

if status == nil or status.phase == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to pick up the job"
  return hs
end

if generation ~= nil and status.observedGeneration ~= nil and status.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. text(generation)
  return hs
end

local phase = status.phase
local metrics = status.metrics or {}
if phase == "Succeeded" then
  hs.status = "Healthy"
  if metrics.evalMetric ~= nil and metrics.evalValue ~= nil then
    hs.message = "Succeeded, evaluation " .. metrics.evalMetric .. " " ..
      string.format("%.4f", metrics.evalValue)
  elseif metrics.evalAccuracy ~= nil then
    hs.message = "Succeeded, evaluation accuracy " .. string.format("%.4f", metrics.evalAccuracy)
  else
    hs.message = "Succeeded"
  end
  return hs
end

if phase == "Online" then
  hs.status = "Healthy"
  hs.message = "Learning online"
  if metrics.recordsOnline ~= nil then
    hs.message = hs.message .. ", " .. text(metrics.recordsOnline) .. " records so far"
  end
  return hs
end

if phase == "Queued" then
  hs.status = "Progressing"
  local queued = condition(status, "Queued")
  if queued ~= nil and text(queued.message) ~= "" then
    hs.message = "Queued: " .. queued.message
  else
    hs.message = "Queued: waiting for Kueue to admit it"
  end
  return hs
end

if phase == "Serving" then
  hs.status = "Healthy"
  local serving = status.serving or {}
  hs.message = "Serving"
  if serving.version ~= nil then
    hs.message = hs.message .. " model " .. text(serving.version)
  end
  if serving.recordsServed ~= nil then
    hs.message = hs.message .. ", " .. text(serving.recordsServed) .. " predictions so far"
  end
  return hs
end

if phase == "Pending" or phase == "Training" or phase == "Evaluating" then
  hs.status = "Progressing"
  hs.message = phase
  local progress = status.progress or {}
  if phase == "Training" and progress.epoch ~= nil then
    hs.message = "Training, epoch " .. text(progress.epoch) .. " done"
  end
  return hs
end

hs.status = "Unknown"
hs.message = "Unknown phase " .. text(phase)
return hs
