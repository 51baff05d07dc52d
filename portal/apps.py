from django.apps import AppConfig


class PortalConfig(AppConfig):
    """The project package as an app: its ``qcluster`` command replaces
    django-q2's (listed before django_q in INSTALLED_APPS for that reason)."""

    name = "portal"

    def ready(self) -> None:
        from django_q.signals import post_execute_in_worker, post_spawn, pre_execute

        from . import workers

        post_spawn.connect(workers.on_worker_spawned, dispatch_uid="portal-worker-spawned")
        pre_execute.connect(workers.on_task_start, dispatch_uid="portal-task-start")
        post_execute_in_worker.connect(workers.on_task_end, dispatch_uid="portal-task-end")
