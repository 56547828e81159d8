"""SIGKILL at chosen points of configs/pretrain.py:smoke, then resume: what the run wrote
equals the uninterrupted run's (pretrain_smoke). The short form of scripts/kill_resume.py,
which kills configs/empathy.py:smoke at 20 points (README, "Kills")."""
import importlib.util
import os
import sys

import pytest

from conftest import PRETRAIN_SMOKE, REPO, run_main

_spec = importlib.util.spec_from_file_location(
    'kill_resume', os.path.join(REPO, 'scripts', 'kill_resume.py'))
kill_resume = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(kill_resume)


@PRETRAIN_SMOKE
@pytest.mark.parametrize('event, n', [('checkpoint', 2), ('stage_end', 1)])
def test_killed_and_resumed_equals_uninterrupted(pretrain_smoke, tmp_path, event, n):
  reference = pretrain_smoke[0]
  workdir = str(tmp_path / os.path.basename(reference))    # report.md is titled by the name
  data_dir = os.environ['TOMK_DATA_DIR']
  cmd = [sys.executable, '-m', 'tomk.main', '--config=configs/pretrain.py:smoke',
         f'--workdir={workdir}']
  killed = kill_resume.Watch(cmd, dict(os.environ), workdir, data_dir, kill_at=(event, n))
  killed.wait()
  assert killed.killed, f'{event} #{n} never happened'
  run_main(workdir)
  assert kill_resume.identical(reference, workdir) == [], killed.landed
