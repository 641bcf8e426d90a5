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


def owa_logon(build: LabBuild) -> str:
    """The stock logon page: 3-part paths under /owa/auth/ for 2013+, 4-part for 2010."""
    if build.line == "2010":
        return _LOGON_2010.format(v=build.full)
    return _LOGON_2013.format(v=build.cu_level)


def owa_logon_custom(org: str) -> str:
    return _LOGON_CUSTOM.format(org=org)


def exporttool_manifest(build: LabBuild) -> str:
    return _MANIFEST.format(v=build.full)


def webmail(org: str) -> str:
    return WEBMAIL.format(org=org)
