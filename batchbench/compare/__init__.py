"""`batchbench compare`: regression verdicts between two runs, for people and for CI.

Plain Python over plain data: never TensorFlow, and scipy only when there are raw samples
to test. The pieces, in the order they run:

  inputs.py        a run directory or results.csv -> a saved run (batchbench.savedrun) with lean rows
  metrics.py       which figures are judged, which way is better, the thresholds
  environment.py   what differs between the two machines
  significance.py  Welch on rounds, Mann–Whitney U on repeats, the smallest p, Holm's correction
  verdicts.py      the records: Entry (one compared point), its verdict, Comparison and Summary
  match.py         the rows of both runs -> matched pairs (nothing dropped)
  judge.py         matched rows -> one verdict each
  text.py          numbers, percentages, and strings from files made safe to print
  cells.py         a row's text, cell by cell
  table.py         the terminal table, sized to the terminal (rich)
  formats.py       markdown, json, csv: each a function of the same Comparison
  command.py       the CLI's entry point: exit codes and $GITHUB_STEP_SUMMARY
"""

from batchbench.compare.command import compare_command
from batchbench.compare.inputs import Run, load_run
from batchbench.compare.judge import compare_runs
from batchbench.compare.verdicts import Comparison, Entry

__all__ = ["compare_command", "compare_runs", "load_run", "Comparison", "Entry", "Run"]
