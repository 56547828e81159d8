"""Runs tomk.main as N processes on this machine, each with its own fake CPU devices.

A multi-host run without a cluster: the processes find each other through JAX's
coordination service on 127.0.0.1 (a free port), exactly as pod workers do, so
sharded data, cross-process collectives and collective checkpoints are exercised.

  python launch/local.py --num_processes=2 --devices_per_process=4 -- \
      --config=configs/pretrain.py:smoke --workdir=/tmp/multihost

Everything after `--` goes to every `python -m tomk.main`. Process 0's output
passes through unchanged; other processes' lines get a `[process i]` prefix.
SIGTERM / SIGINT are forwarded to every process (a preemption: they agree on a
step, checkpoint it and exit 0). If one process fails the others are stopped, since
they would otherwise wait for it in a collective; the exit status is the first
failure's.
"""
from __future__ import annotations

import argparse
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading


def free_port() -> int:
  with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def commands(num_processes: int, devices_per_process: int, main_args: list[str],
             port: int) -> list[tuple[list[str], dict[str, str]]]:
  """(argv, extra environment) of each process."""
  flags = os.environ.get('XLA_FLAGS', '').split()
  flags = [f for f in flags if not f.startswith('--xla_force_host_platform_device_count')]
  env = {'XLA_FLAGS': ' '.join(flags + [f'--xla_force_host_platform_device_count='
                                        f'{devices_per_process}']),
         'JAX_PLATFORMS': 'cpu'}
  return [([sys.executable, '-m', 'tomk.main', *main_args,
            f'--coordinator_address=127.0.0.1:{port}', f'--num_processes={num_processes}',
            f'--process_id={i}'], env) for i in range(num_processes)]


def _relay(stream, prefix: str, out):
  for line in iter(stream.readline, ''):
    out.write(prefix + line)
    out.flush()
  stream.close()


def main(argv=None) -> int:
  argv = sys.argv[1:] if argv is None else argv
  if '--' in argv:
    split = argv.index('--')
    own, main_args = argv[:split], argv[split + 1:]
  else:
    own, main_args = argv, []
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--num_processes', type=int, default=2)
  parser.add_argument('--devices_per_process', type=int, default=4)
  parser.add_argument('--port', type=int, default=0, help='coordinator port; 0 = a free one')
  parser.add_argument('--dry-run', '--dry_run', dest='dry_run', action='store_true',
                      help='print the commands and exit')
  args = parser.parse_args(own)
  if not main_args:
    parser.error('give tomk.main\'s flags after `--`, e.g. -- --config=configs/pretrain.py:smoke '
                 '--workdir=/tmp/w')
  if args.num_processes < 1 or args.devices_per_process < 1:
    parser.error('--num_processes and --devices_per_process must be at least 1.')
  port = args.port or free_port()
  plan = commands(args.num_processes, args.devices_per_process, main_args, port)
  if args.dry_run:
    for command, env in plan:
      print(' '.join(f'{k}={shlex.quote(v)}' for k, v in env.items()), shlex.join(command))
    return 0

  processes, relays = [], []
  for i, (command, env) in enumerate(plan):
    if i == 0:
      p = subprocess.Popen(command, env={**os.environ, **env})
    else:
      p = subprocess.Popen(command, env={**os.environ, **env}, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
      relays.append(threading.Thread(target=_relay, args=(p.stdout, f'[process {i}] ',
                                                          sys.stdout), daemon=True))
      relays[-1].start()
    processes.append(p)

  def forward(signum, frame):
    del frame
    for p in processes:
      if p.poll() is None:
        p.send_signal(signum)
  previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}

  status = 0
  try:
    remaining = set(range(len(processes)))
    while remaining:
      for i in sorted(remaining):
        try:
          code = processes[i].wait(timeout=0.2)
        except subprocess.TimeoutExpired:
          continue
        remaining.discard(i)
        if code and not status:
          status = code
          print(f'launch/local.py: process {i} exited with {code}; stopping the others.',
                file=sys.stderr, flush=True)
          for j in remaining:
            processes[j].kill()
  finally:
    for s, handler in previous.items():
      signal.signal(s, handler)
    for t in relays:
      t.join(timeout=5)
  return status


if __name__ == '__main__':
  sys.exit(main())
