"""The data stages as Ibis expressions: one implementation, run by DuckDB (embedded default) or Spark.

Every function here takes and returns :class:`ibis.Table` expressions (or small Python results of
aggregates), never a whole table in Python memory, so the same code runs on an in-process DuckDB that
spills to disk and on a Spark cluster. :mod:`.backends` opens the engine and :mod:`.in_memory` turns a
caller's frames into in-memory tables; :mod:`.interactions`, :mod:`.log_features`, :mod:`.splitting`,
:mod:`.transformer` (the fit, over :mod:`.order_statistics`) and :mod:`.encoding` are the stages.
"""
