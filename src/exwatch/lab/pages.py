"""Static content of the simulated servers: OWA logon pages, the eDiscovery manifest,
default pages of other web servers, another webmail.

Written for the lab (not copied from any product): each page carries the markers real
servers show and scanners look for, and nothing more.
"""

from __future__ import annotations

from exwatch.lab.builds import LabBuild

_LOGON_2013 = """<!DOCTYPE html>
<html dir="ltr" class="mouse">
<head>
<meta http-equiv="Content-Type" content="text/html; CHARSET=utf-8">
<meta name="Robots" content="NOINDEX, NOFOLLOW">
<meta name="viewport" content="width=device-width, initial-scale=1.0, maximum-scale=1.0">
<!-- {{57A118C6-2DA9-419d-BE9A-F92B0F9A418B}} -->
<!-- OwaPage = ASP.auth_logon_aspx -->
<title>Outlook</title>
<link rel="shortcut icon" href="/owa/auth/{v}/themes/resources/favicon.ico" type="image/x-icon">
<link rel="stylesheet" type="text/css" href="/owa/auth/{v}/themes/resources/logon.css">
<link rel="stylesheet" type="text/css" href="/owa/auth/{v}/themes/resources/owafont_en.css">
<script type="text/javascript" src="/owa/auth/{v}/scripts/premium/flogon.js"></script>
<script type="text/javascript">
    var g_fFcs = 1;
    function IsOwaPremiumBrowser() {{
        return (typeof window.XMLHttpRequest != "undefined");
    }}
    function setFocus() {{
        if (g_fFcs) {{ var u = document.getElementById("username"); if (u) u.focus(); }}
    }}
</script>
</head>
<body class="signInBg" onload="setFocus()">
<noscript>
  <div id="dvErr"><div>To use Outlook, browser settings must allow scripts to run.
  For information about how to allow scripts, consult the Help for your browser.</div></div>
</noscript>
<form action="/owa/auth.owa" method="POST" name="logonForm" autocomplete="off">
  <input type="hidden" name="destination" value="">
  <input type="hidden" name="flags" value="4">
  <input type="hidden" name="forcedownlevel" value="0">
  <div id="mainLogonDiv" class="mouse">
    <div class="sidebar"><div class="owaLogoContainer">
      <img src="/owa/auth/{v}/themes/resources/owa_text_blue.png" class="owaLogo" alt="">
    </div></div>
    <div class="logonContainer">
      <div id="lgnDiv" class="logonDiv">
        <div class="signInInputLabel" id="userNameLabel">Domain\\user name:</div>
        <div><input id="username" name="username" class="signInInputText" type="text"
             placeholder="Domain\\user name"></div>
        <div class="signInInputLabel" id="passwordLabel">Password:</div>
        <div><input id="password" name="password" class="signInInputText" type="password"
             placeholder="Password"></div>
        <div class="signInEnter"><div onclick="clkLgn()" class="signinbutton" role="button"
             tabindex="0"><span class="signinTxt">sign in</span></div></div>
      </div>
    </div>
  </div>
</form>
</body>
</html>
"""

_LOGON_2010 = """<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01//EN" "http://www.w3.org/TR/html4/strict.dtd">
<!-- Copyright (c) 2006 Microsoft Corporation.  All rights reserved. -->
<!-- OwaPage = ASP.auth_logon_aspx -->
<html>
<head>
<meta http-equiv="Content-Type" content="text/html; charset=utf-8">
<meta name="Robots" content="NOINDEX, NOFOLLOW">
<title>Outlook Web App</title>
<link type="text/css" rel="stylesheet" href="/owa/{v}/themes/resources/logon.css">
<link type="text/css" rel="stylesheet" href="/owa/{v}/themes/base/owafont.css">
<link rel="shortcut icon" href="/owa/{v}/themes/resources/favicon.ico" type="image/x-icon">
<script type="text/javascript" src="/owa/{v}/scripts/premium/flogon.js"></script>
</head>
<body class="owaLgnBdy">
<noscript><div class="lgnErr">To use Outlook Web App, browser settings must allow scripts
to run.</div></noscript>
<form action="/owa/auth/owaauth.dll" method="POST" name="logonForm" autocomplete="off">
<input type="hidden" name="destination" value="">
<input type="hidden" name="flags" value="0">
<input type="hidden" name="forcedownlevel" value="0">
<table id="tblMain" cellpadding="0" cellspacing="0">
<tr><td><img src="/owa/{v}/themes/base/lgntopl.gif" alt=""></td>
<td class="lgnTM"><img class="mid" src="/owa/{v}/themes/resources/owa_text_blue.gif"
 alt="Outlook Web App"></td></tr>
<tr><td colspan="2">
<label for="username">Domain\\user name:</label>
<input id="username" name="username" type="text" class="txt">
<label for="password">Password:</label>
<input id="password" name="password" type="password" class="txt">
<input type="submit" class="btn" value="Sign in">
</td></tr>
</table>
</form>
</body>
</html>
"""

# A branded logon page an organisation built from logon.aspx: the page marker survives,
# every versioned resource path was replaced.
_LOGON_CUSTOM = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<!-- OwaPage = ASP.auth_logon_aspx -->
<title>{org} Mail - Sign in</title>
<link rel="stylesheet" href="/owa/auth/custom/portal.css">
<link rel="icon" href="/owa/auth/custom/logo.ico">
</head>
<body>
<header><img src="/owa/auth/custom/logo.svg" alt="{org}"></header>
<main>
<h1>Sign in to {org} Mail</h1>
<form action="/owa/auth.owa" method="POST" name="logonForm">
<input type="hidden" name="destination" value="">
<input type="hidden" name="flags" value="4">
<p><label>User name <input name="username" type="text"></label></p>
<p><label>Password <input name="password" type="password"></label></p>
<p><button type="submit">Sign in</button></p>
</form>
</main>
<footer>Need help? Call the service desk.</footer>
</body>
</html>
"""

_MANIFEST = """<?xml version="1.0" encoding="utf-8"?>
<asmv1:assembly xsi:schemaLocation="urn:schemas-microsoft-com:asm.v1 assembly.adaptive.xsd" \
manifestVersion="1.0" xmlns:asmv1="urn:schemas-microsoft-com:asm.v1" \
xmlns="urn:schemas-microsoft-com:asm.v2" xmlns:asmv2="urn:schemas-microsoft-com:asm.v2" \
xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" \
xmlns:dsig="http://www.w3.org/2000/09/xmldsig#">
  <assemblyIdentity name="microsoft.exchange.ediscovery.exporttool.application" \
version="{v}" publicKeyToken="b1d1a6c45aa418ce" language="neutral" \
processorArchitecture="msil" xmlns="urn:schemas-microsoft-com:asm.v1" />
  <description asmv2:publisher="Microsoft Corporation" asmv2:product="eDiscovery PST Export Tool" \
xmlns="urn:schemas-microsoft-com:asm.v1" />
  <deployment install="false" trustURLParameters="true" />
  <dependency>
    <dependentAssembly dependencyType="install" \
codebase="{v}\\microsoft.exchange.ediscovery.exporttool.exe.manifest" size="18305">
      <assemblyIdentity name="microsoft.exchange.ediscovery.exporttool.exe" version="{v}" \
publicKeyToken="b1d1a6c45aa418ce" language="neutral" processorArchitecture="msil" \
type="win32" />
    </dependentAssembly>
  </dependency>
</asmv1:assembly>
"""

ERROR_404 = """<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Strict//EN" "http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd">
<html xmlns="http://www.w3.org/1999/xhtml">
<head><meta http-equiv="Content-Type" content="text/html; charset=iso-8859-1"/>
<title>404 - File or directory not found.</title></head>
<body><div id="header"><h1>Server Error</h1></div>
<div id="content"><h2>404 - File or directory not found.</h2>
<h3>The resource you are looking for might have been removed, had its name changed, or is
temporarily unavailable.</h3></div></body></html>
"""

IIS_DEFAULT = """<!DOCTYPE html>
<html>
<head>
<meta http-equiv="Content-Type" content="text/html; charset=iso-8859-1">
<title>IIS Windows Server</title>
<style>body { color:#000; background-color:#0072C6; margin:0; }
#c { margin:10% auto; width:60%; }</style>
</head>
<body>
<div id="c"><a href="https://go.microsoft.com/fwlink/?linkid=66138&amp;clcid=0x409">
<img src="iisstart.png" alt="IIS" width="960" height="600"></a></div>
</body>
</html>
"""

NGINX_DEFAULT = """<!DOCTYPE html>
<html>
<head>
<title>Welcome to nginx!</title>
<style>html { color-scheme: light dark; } body { width: 35em; margin: 0 auto; }</style>
</head>
<body>
<h1>Welcome to nginx!</h1>
<p>If you see this page, the nginx web server is successfully installed and working.
Further configuration is required.</p>
<p><em>Thank you for using nginx.</em></p>
</body>
</html>
"""

APACHE_DEFAULT = """<!DOCTYPE html>
<html>
<head><meta charset="utf-8"><title>Apache2 Debian Default Page: It works</title></head>
<body>
<div class="main_page"><h1>Apache2 Debian Default Page</h1>
<p><b>It works!</b> This is the default welcome page used to test the correct operation of
the Apache2 server after installation on Debian systems.</p></div>
</body>
</html>
"""

# Another webmail: its own login form, no OWA markers.
WEBMAIL = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Webmail :: Welcome to {org} Webmail</title>
<link rel="stylesheet" href="/skins/elastic/styles/styles.min.css">
<link rel="shortcut icon" href="/skins/elastic/images/favicon.ico">
</head>
<body class="task-login">
<div id="layout"><h1 class="voice">{org} Webmail Login</h1>
<form name="login-form" method="post" action="/?_task=login">
<input type="hidden" name="_task" value="login"><input type="hidden" name="_action" value="login">
<table><tbody>
<tr><td class="title"><label for="rcmloginuser">Username</label></td>
<td class="input"><input name="_user" id="rcmloginuser" size="40" type="text"></td></tr>
<tr><td class="title"><label for="rcmloginpwd">Password</label></td>
<td class="input"><input name="_pass" id="rcmloginpwd" size="40" type="password"></td></tr>
</tbody></table>
<p class="formbuttons"><button type="submit" id="rcmloginsubmit">Login</button></p>
</form></div>
</body>
</html>
"""


# Exchange 2007's page: the four-part build under /owa/, "Outlook Web Access" titles.
_LOGON_2007 = """<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01//EN" "http://www.w3.org/TR/html4/strict.dtd">
<!-- Copyright (c) 2006 Microsoft Corporation.  All rights reserved. -->
<!-- OwaPage = ASP.auth_logon_aspx -->
<html>
<head>
<meta http-equiv="Content-Type" content="text/html; charset=utf-8">
<meta name="Robots" content="NOINDEX, NOFOLLOW">
<title>Microsoft Exchange - Outlook Web Access</title>
<link type="text/css" rel="stylesheet" href="/owa/{v}/themes/base/logon.css">
<link rel="shortcut icon" href="/owa/{v}/themes/base/favicon.ico" type="image/x-icon">
<script type="text/javascript" src="/owa/{v}/scripts/premium/flogon.js"></script>
</head>
<body class="owaLgnBdy">
<noscript><div class="lgnErr">To use Outlook Web Access, browser settings must allow scripts
to run.</div></noscript>
<form action="/owa/auth/owaauth.dll" method="POST" name="logonForm" autocomplete="off">
<input type="hidden" name="destination" value="">
<input type="hidden" name="flags" value="0">
<table id="tblMain" cellpadding="0" cellspacing="0">
<tr><td><img src="/owa/{v}/themes/base/lgntopl.gif" alt=""></td></tr>
<tr><td>
<label for="username">Domain\\user name:</label>
<input id="username" name="username" type="text" class="txt">
<label for="password">Password:</label>
<input id="password" name="password" type="password" class="txt">
<input type="submit" class="btn" value="Log On">
</td></tr>
</table>
</form>
</body>
</html>
"""

# Exchange 2003's logon page (/exchweb/bin/auth/owalogon.asp): no version anywhere.
LOGON_2003 = """<HTML>
<HEAD>
<TITLE>Microsoft Outlook Web Access</TITLE>
<meta http-equiv="Content-Type" content="text/html; CHARSET=utf-8">
<link rel="stylesheet" type="text/css" href="/exchweb/themes/logon.css">
</HEAD>
<BODY scroll="AUTO" bgcolor="#3D5FA3">
<FORM action="/exchweb/bin/auth/owaauth.dll" method="POST" name="logonForm" autocomplete="off">
<INPUT type="hidden" name="destination" value="/exchange/">
<INPUT type="hidden" name="flags" value="0">
<TABLE><TR><TD>Microsoft Office Outlook Web Access</TD></TR>
<TR><TD>Domain\\user name: <INPUT id="username" name="username" type="text"></TD></TR>
<TR><TD>Password: <INPUT id="password" name="password" type="password"></TD></TR>
<TR><TD><INPUT type="submit" value="Log On"></TD></TR></TABLE>
</FORM>
</BODY>
</HTML>
"""

# The front end's error page (2013 and later): stock static paths that carry the CU.
_ERROR_FE = """<!DOCTYPE html>
<html dir="ltr">
<head>
<meta http-equiv="Content-Type" content="text/html; charset=utf-8">
<meta name="Robots" content="NOINDEX, NOFOLLOW">
<title>Outlook</title>
<link rel="shortcut icon" href="/owa/auth/{v}/themes/resources/favicon.ico" type="image/x-icon">
<link rel="stylesheet" type="text/css" href="/owa/auth/{v}/themes/resources/errorFE.css">
</head>
<body>
<div class="mainHeader">Something went wrong</div>
<div class="headerMessage">Sorry, we can't get that information right now. Please try again
later. If the problem continues, contact your helpdesk.</div>
</body>
</html>
"""

# What the lab serves as a favicon: an ICO file header, enough to be an image, not a page.
FAVICON = "\x00\x00\x01\x00\x01\x00\x10\x10\x00\x00\x01\x00\x20\x00"


def owa_logon(build: LabBuild) -> str:
    """The stock logon page: 3-part paths under /owa/auth/ for 2013+, 4-part for 2007/2010."""
    if build.line == "2010":
        return _LOGON_2010.format(v=build.full)
    if build.line == "2007":
        return _LOGON_2007.format(v=build.full)
    return _LOGON_2013.format(v=build.cu_level)


def favicon_path(build: LabBuild) -> str:
    """Where the stock page of `build` links its favicon (relative to the document root)."""
    if build.line == "2007":
        return f"owa/{build.full}/themes/base/favicon.ico"
    if build.line == "2010":
        return f"owa/{build.full}/themes/resources/favicon.ico"
    return f"owa/auth/{build.cu_level}/themes/resources/favicon.ico"


def error_fe(build: LabBuild) -> str:
    return _ERROR_FE.format(v=build.cu_level)


def owa_logon_custom(org: str) -> str:
    return _LOGON_CUSTOM.format(org=org)


def exporttool_manifest(build: LabBuild) -> str:
    return _MANIFEST.format(v=build.full)


def webmail(org: str) -> str:
    return WEBMAIL.format(org=org)


# -- what other web servers and portals answer (the negatives) -------------------------
# Each imitates the markers public fingerprints use for the product (nuclei's panel
# templates, WhatWeb, Greenbone), not the product's pages.

IIS_401 = (
    '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Strict//EN" '
    '"http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd">\n'
    "<html><head><title>401 - Unauthorized: Access is denied due to invalid credentials."
    "</title></head><body><h2>401 - Unauthorized: Access is denied due to invalid credentials."
    "</h2><h3>You do not have permission to view this directory or page using the credentials"
    " that you supplied.</h3></body></html>\n"
)

APACHE_404 = """<!DOCTYPE HTML PUBLIC "-//IETF//DTD HTML 2.0//EN">
<html><head>
<title>404 Not Found</title>
</head><body>
<h1>Not Found</h1>
<p>The requested URL was not found on this server.</p>
<hr>
<address>Apache/2.4.62 (Debian) Server at mail.example Port 443</address>
</body></html>
"""

ZIMBRA = """<!DOCTYPE html>
<html lang="en">
<head>
<title>Zimbra Web Client Sign In</title>
<meta name="description" content="Zimbra provides open source server and client software for \
messaging and collaboration.">
<link rel="SHORTCUT ICON" href="/img/logo/favicon.ico">
</head>
<body><form method="post" name="loginForm" action="/">
<input type="hidden" name="loginOp" value="login"/></form>
<div class="copyright">Copyright &copy; 2005-2023 Synacor, Inc. All rights reserved.</div>
</body>
</html>
"""

KERIO = """<!DOCTYPE html>
<html>
<head>
<title>Kerio Connect Client</title>
<link rel="icon" href="/webmail/favicon.ico">
</head>
<body class="login"><div id="login">
<form action="/webmail/dologin.php" method="post" name="form1">
<input type="text" name="kerio_username"><input type="password" name="kerio_password">
</form></div><div class="footer">Kerio Connect &copy; GFI Software</div></body>
</html>
"""

SKYPE_ROOT = (
    '{"AccessLocation":"External","Root":{"Links":[{"token":"Domain","href":'
    '"https://lyncdiscover.example/Autodiscover/AutodiscoverService.svc/root/domain"}]}}'
)

F5_POLICY = """<!DOCTYPE html>
<html><head><title>BIG-IP logout page</title>
<link rel="stylesheet" href="/public/include/css/apm.css"></head>
<body><form id="auth_form" name="e1" method="post" action="/my.policy" autocomplete="off">
<input type="text" name="username"><input type="password" name="password">
</form></body></html>
"""

CITRIX = """<!DOCTYPE html>
<html><head><title>Citrix Gateway</title>
<script src="/logon/LogonPoint/init.js"></script></head>
<body><div id="logonbelt-topshadow"></div><noscript>Please enable JavaScript</noscript></body>
</html>
"""

SOPHOS = """<!DOCTYPE html>
<html><head><title>Sophos User Portal</title>
<link rel="stylesheet" href="/css/userportal.css"></head>
<body><form action="/userportal/webpages/myaccount/login.jsp" method="post">
<input name="username"><input name="password" type="password"></form></body></html>
"""

TMG = """<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.0 Transitional//EN">
<HTML><HEAD><TITLE>Forefront TMG</TITLE>
<link href="/CookieAuth.dll?GetPic?formdir=3&image=logon_style.css" rel="stylesheet"></HEAD>
<BODY><FORM action="/CookieAuth.dll?Logon" method="post" name="logonForm">
<INPUT type="hidden" name="curl" value="Z2F"><INPUT type="hidden" name="formdir" value="3">
<INPUT id="username" name="username"><INPUT id="password" name="password" type="password">
</FORM></BODY></HTML>
"""

UAG = """<!DOCTYPE html>
<html><head><title>Forefront Unified Access Gateway</title>
<link rel="stylesheet" href="/InternalSite/CustomUpdate/style.css"></head>
<body><form action="/InternalSite/Validate.asp" method="post" name="form1">
<input name="user_name"><input name="password" type="password"></form></body></html>
"""

# A Flask honeypot's error page (joda32/owa-honeypot renders a template it lacks); one
# line, as the lab's `return` texts are.
FLASK_500 = (
    "<!doctype html><html lang=en><title>500 Internal Server Error</title>"
    "<h1>Internal Server Error</h1><p>The server encountered an internal error and was unable"
    " to complete your request. Either the server is overloaded or there is an error in the"
    " application.</p>"
)

HONEYPOT_401 = (
    "Could not verify your access level for that URL. You have to login with proper credentials"
)
