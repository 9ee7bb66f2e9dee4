"""``make moto-server``: a moto server on 127.0.0.1 for a dry run of ``make upsert-pipeline``
and ``make run-pipeline`` (``AWS_ENDPOINT_URL=http://127.0.0.1:$MOTO_PORT``).

moto 5.2.5 stores CloudWatch composite alarms (``describe_alarms`` returns them) but has no
``PutCompositeAlarm`` action; ``install_composite_alarm_support`` adds it the way moto's backend
expects (an alarm with ``rule``). Other known gaps that do not affect the dry run:
``ListPipelineExecutionSteps``, ``UpdateEndpoint``, ``CreateMonitoringSchedule``; executions
run nothing (they are ``Succeeded`` at once).
"""
from __future__ import annotations

import argparse
import os
import sys


def _put_composite_alarm(self):
    from moto.core.responses import EmptyResult

    self.cloudwatch_backend.put_metric_alarm(
        name=self._get_param("AlarmName"), namespace=None, metric_name=None, comparison_operator=None,
        evaluation_periods=None, period=None, threshold=None, statistic=None,
        description=self._get_param("AlarmDescription"), dimensions=[],
        alarm_actions=self._get_param("AlarmActions", []), rule=self._get_param("AlarmRule"))
    return EmptyResult()


def install_composite_alarm_support() -> None:
    from moto.cloudwatch.responses import CloudWatchResponse

    if not hasattr(CloudWatchResponse, "put_composite_alarm"):
        CloudWatchResponse.put_composite_alarm = _put_composite_alarm


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pipelines.moto_server", description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=int(os.environ.get("MOTO_PORT", 5055)))
    args = p.parse_args(argv)
    install_composite_alarm_support()
    from moto.server import main as moto_main

    print(f"moto server on http://{args.host}:{args.port}; in another shell:\n"
          f"  export AWS_ENDPOINT_URL=http://{args.host}:{args.port} AWS_ACCESS_KEY_ID=testing "
          "AWS_SECRET_ACCESS_KEY=testing ROLE_ARN=arn:aws:iam::123456789012:role/clinical-ml\n"
          "  make upsert-pipeline && make run-pipeline WAIT=1", file=sys.stderr, flush=True)
    moto_main(["-H", args.host, "-p", str(args.port)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
