// response_mode=form_post: send the authorization response to the app as soon as the page
// has loaded (this file runs deferred). The page's button does the same without scripts.
"use strict";

document.getElementById("form-post").submit();
