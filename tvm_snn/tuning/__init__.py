"""Tuning: MetaSchedule's database, builders, runners and XGBoost cost model over the kernels' plan spaces.

:func:`tune` (public as ``tvm_snn.tune``) measures plans and keeps them in
a work dir; ``tvm_snn.compile(..., tuning_db=work_dir)`` builds each kernel
with the fastest plan found (:class:`~tvm_snn.tuning.plans.DatabasePlans`).
"""
