import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("binaries", "0009_binaryevent_action_written"),
    ]

    operations = [
        migrations.AlterField(
            model_name='binaryevent',
            name='action',
            field=models.CharField(choices=[('binary.created', 'Binary Created'), ('binary.updated', 'Binary Updated'), ('binary.hashable', 'Binary Hashable'), ('binary.hashing', 'Binary Hashing'), ('binary.signable', 'Binary Signable'), ('binary.signed', 'Binary Signed'), ('binary.uploadable', 'Binary Uploadable'), ('binary.destroyed', 'Binary Destroyed'), ('binary.requeued', 'Binary Requeued'), ('binary.upload_cleaned', 'Binary Upload Cleaned'), ('binary.integrity_failed', 'Binary Integrity Failed'), ('artifact.created', 'Artifact Created'), ('artifact.updated', 'Artifact Updated'), ('artifact.deleted', 'Artifact Deleted'), ('artifact_version.created', 'Artifact Version Created'), ('artifact_version.updated', 'Artifact Version Updated'), ('artifact_version.deleted', 'Artifact Version Deleted'), ('binary_signature.created', 'Binary Signature Created'), ('binary_signature.deleted', 'Binary Signature Deleted'), ('download_url.issued', 'Download Url Issued'), ('signing_key.created', 'Signing Key Created'), ('signing_key.updated', 'Signing Key Updated'), ('signing_key.revoked', 'Signing Key Revoked'), ('api_key.created', 'Api Key Created'), ('api_key.updated', 'Api Key Updated'), ('api_key.revoked', 'Api Key Revoked'), ('membership.invited', 'Membership Invited'), ('membership.invitation_declined', 'Membership Invitation Declined'), ('membership.invitation_cancelled', 'Membership Invitation Cancelled'), ('membership.added', 'Membership Added'), ('membership.changed', 'Membership Changed'), ('membership.removed', 'Membership Removed'), ('organization.created', 'Organization Created'), ('organization.updated', 'Organization Updated')], max_length=64),
        ),
        migrations.AlterField(
            model_name='binaryevent',
            name='organization',
            field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to='peridio_console.organization'),
        ),
    ]
