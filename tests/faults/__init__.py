"""Fault scenarios with figures: the workload and the operator killed, brokers restarted, bad input.

Each `*_faults.py` / `bad_records.py` / `manifests.py` module runs one bounded
scenario on loopback servers and returns `figures.Figure`s (what was
measured, the goal, whether it is met). The `test_*.py` files assert every
figure meets its goal; `python -m bench.faults_report` (`make faults`) runs
the same scenarios and prints them as one table.
"""
