"""The orgs console pages, one module per subject: organizations, projects, audit (and
what they share: common). Members and sign-in pages: orgs/views_members.py and
orgs/views_auth.py; pages that compose other apps: platformadmin/project_views.py."""
