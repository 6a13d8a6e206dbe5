"""What other parts of the app hear about accounts, without the users and auth packages knowing them.

`access_revoked` is sent after the commit that took access away: a sign-out (`sign_in` set: that
sign-in only) or an admin's deactivation or role change (`sign_in` None: every sign-in of the user).
The streaming package listens, to end the sessions and close the sockets that the access was for.

`deactivating` is sent inside the transaction that deactivates an account, before its commit: the auth
package revokes every sign-in of the account in that same transaction, so reactivating it later revives
none of its old tokens.

`renamed` is sent after the commit that changed how a user is shown to others (display name or username): the
content package listens, since the catalogue shows each item's creator by that name.
"""

from __future__ import annotations

from blinker import Namespace

_signals = Namespace()

# sender: the app; keywords: user_id (str), sign_in (str | None), why (str)
access_revoked = _signals.signal("access-revoked")
# sender: the app; keywords: user_id (uuid.UUID)
deactivating = _signals.signal("deactivating")
# sender: the app; keywords: user_id (uuid.UUID)
renamed = _signals.signal("renamed")
