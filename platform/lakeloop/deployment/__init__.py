"""Deployment: the registry's aliases, approvals, rollouts, serving (local and on a
cluster), batch scoring and the seldon-core components. Light to import (the serving
image imports lakeloop.deployment.seldon)."""
