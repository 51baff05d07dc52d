"""The key-pair card of an SFTP or SCP destination: "Generate key pair"."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from projects.audit import client_ip

from ...settings_views import destination_for_admin
from .. import destination_class
from .actions import do_generate_keypair


@login_required
@require_POST
def destination_keypair(request, app_id, dest_id):
    from .destination import SSHDestination  # paramiko: not when the URLs load

    project, destination = destination_for_admin(request, app_id, dest_id)
    if not issubclass(destination_class(destination.kind), SSHDestination):
        raise Http404("Only SFTP and SCP destinations use key pairs")
    do_generate_keypair(destination, acting_user=request.user, ip=client_ip(request))
    messages.success(
        request,
        "A new key pair was generated. Add its public key to the user's "
        "~/.ssh/authorized_keys on the server, then test the connection.",
    )
    return redirect("delivery:edit", app_id=project.app_id, dest_id=destination.pk)
