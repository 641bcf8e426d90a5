// exwatch hostcheck web-shell rules, written for exwatch from the published indicators
// (compromise-indicators.md §4).  Every rule has meta id/severity/description/source and
// examples in yara_examples.yaml that the self-test checks (match and no-match).

rule exwatch_chopper_eval_request
{
    meta:
        id = "webshell-chopper-eval-request"
        severity = "critical"
        cve = "CVE-2021-27065"
        description = "China Chopper style: server-side script that evaluates a request parameter"
        source = "Neo23x0/signature-base:yara/apt_hafnium.yar; CISA MAR-10328929"
    strings:
        $eval = /eval\s*\(\s*Request\s*(\.Item|\.Form)?\s*\[/ nocase
        $evalb = /eval\s*\(\s*\(?\s*Request\.Item\s*\[/ nocase
        $unsafe = "\"unsafe\"" nocase
        $obf = ";eval(Request[_0x" nocase
        $asf = ");eval/*asf" nocase
    condition:
        filesize < 2MB and (($eval or $evalb) and $unsafe or $obf or $asf)
}

rule exwatch_oab_vdir_config_shell
{
    meta:
        id = "webshell-oab-vdir-dump"
        severity = "critical"
        cve = "CVE-2021-27065"
        description = "OAB virtual directory settings written to a file with script in ExternalUrl/InternalUrl (the ProxyLogon 27065 drop)"
        source = "MSTIC WEBSHELL_CVE_2021_27065_Webshells (via Neo23x0/signature-base)"
    strings:
        $s1 = "script language" nocase
        $s2 = "page language" nocase
        $s3 = "runat=\"server\"" nocase
        $s4 = "/script" nocase
        $u1 = "externalurl" nocase
        $u2 = "internalurl" nocase
        $c1 = "internalauthenticationmethods" nocase
        $c2 = "extendedprotectiontokenchecking" nocase
    condition:
        filesize < 50KB and any of ($s*) and any of ($u*) and all of ($c*)
}

rule exwatch_pst_page_drop
{
    meta:
        id = "webshell-pst-aspx"
        severity = "critical"
        cve = "CVE-2021-34523"
        description = "A PST file (!BDN header) holding an ASP.NET page directive: a mailbox export dropped as a web shell (ProxyShell)"
        source = "Neo23x0/signature-base:yara/expl_proxyshell.yar (facts)"
    strings:
        $page = "Page Language=" nocase
        $p2 = "<%@ Page" nocase
        $p3 = "script language=" nocase
    condition:
        uint32(0) == 0x4e444221 and filesize < 2MB and any of them
}

rule exwatch_der_certificate_request_drop
{
    meta:
        id = "webshell-der-request"
        severity = "critical"
        cve = "CVE-2021-34523"
        description = "A DER blob (certificate request) holding script: New-ExchangeCertificate -RequestFile used to drop a web shell"
        source = "compromise-indicators.md §4.4 (ProxyShell certificate-request drop)"
    strings:
        $a = "<script" nocase
        $b = "Page_Load" nocase
        $c = "Page Language" nocase
        $d = "eval(" nocase
    condition:
        uint16be(0) == 0x3082 and filesize < 10KB and any of them
}

rule exwatch_jscript_base64_eval
{
    meta:
        id = "webshell-jscript-base64-eval"
        severity = "critical"
        cve = "CVE-2021-26855"
        description = "JScript page that decodes base64 and evaluates it (Chopper variant of March 2021)"
        source = "Neo23x0/signature-base:yara/apt_hafnium.yar (Chopper_Mar21_4 facts)"
    strings:
        $lang = /<%@\s*Page\s+Language\s*=\s*"?Jscript/ nocase
        $b64 = ".FromBase64String(" nocase
        $eval = "eval(System.Text.Encoding." nocase
        $form = /=\s*Request\.Form\s*\(\s*"/ nocase
        $ev2 = "eval(" nocase
    condition:
        filesize < 100KB and $lang and (($b64 and $eval) or ($form and $ev2))
}

rule exwatch_upload_shell
{
    meta:
        id = "webshell-file-upload"
        severity = "high"
        cve = ""
        description = "Page that saves the first uploaded file to a path from the request (upload web shell)"
        source = "Neo23x0/signature-base:yara/apt_hafnium.yar (Chopper_Mar21_3, SimpleSeeSharp facts)"
    strings:
        $a = "Request.Files[0].SaveAs(" nocase
        $b = "HttpPostedFile thisFile = Request.Files[0]" nocase
        $c = "IO.StreamWriter(Request.Form[" nocase
    condition:
        filesize < 200KB and any of them
}

rule exwatch_named_shell_strings
{
    meta:
        id = "webshell-known-strings"
        severity = "critical"
        cve = ""
        description = "Distinctive strings of shells from the March 2021 reports (SecChecker, SPORTSBALL, reGeorg variant, Chopper cleanup commands)"
        source = "Neo23x0/signature-base:yara/apt_hafnium.yar; yara/apt_hafnium_log_sigs.yar"
    strings:
        $sec1 = "fireeye\\\\xagt.exe" nocase
        $sec2 = "csfalconservice.exe" nocase
        $sport1 = "new HttpCookie(\"fqrspt\"" nocase
        $sport2 = "ZN2aDAB4rXsszEvCLrzgcvQ4oi5J1TuiRULlQbYwldE="
        $regeorg = "GetString(Convert.FromBase64String(StrTr(Request.Headers.Get" nocase
        $clean1 = "cmd.exe /c cd /d C:\\inetpub\\wwwroot\\aspnet_client" nocase
        $clean2 = "aspnet_client&attrib +h +s +r " nocase
        $gold = "gold8899"
        $orange = "orangenb"
    condition:
        filesize < 5MB and (($sec1 and $sec2) or any of ($sport*) or $regeorg or any of ($clean*) or $gold or $orange)
}

rule exwatch_minidump
{
    meta:
        id = "memory-dump-file"
        severity = "high"
        cve = ""
        description = "A Windows minidump (MDMP) where only web content belongs: credential theft (LSASS dumps were written to web roots in March 2021)"
        source = "SigmaHQ proc_creation_win_apt_hafnium.yml (comsvcs.dll MiniDump into inetpub)"
    condition:
        uint32(0) == 0x504d444d
}
