"""The lakehouse: Delta tables, data contracts and their checks, the bronze, silver and gold
layers. Light to import (the serving image imports lakeloop.lakehouse.rules)."""
