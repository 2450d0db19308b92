"""Console forms for API keys and members; the services decide and write."""

from django import forms

from peridio_console.accounts.models import Role


class ApiKeyForm(forms.Form):
    name = forms.CharField(
        max_length=128, required=False, help_text="What uses it, e.g. ci-nightly or my laptop."
    )


class MemberInviteForm(forms.Form):
    invitee = forms.CharField(
        max_length=254,
        label="Username or e-mail address",
        help_text="They become a member when they accept the invitation in the console.",
    )
    role = forms.ChoiceField(choices=Role.choices, initial=Role.ENGINEER)


class MemberRoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)
