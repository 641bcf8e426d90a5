"""Exchange cmdlet logs (`Logging\\CmdletInfra\\...\\Cmdlet\\Rps_Cmdlet_*.LOG` and kin).

`#Log-type: Rps Cmdlet Logs`, CSV; the columns rules read are Cmdlet, Parameters
(PowerShell syntax: `-FilePath "\\\\host\\c$\\x.aspx"`), AuthenticatedUser, ClientApplication
and ProcessName.
"""

from __future__ import annotations

from typing import ClassVar

from exwatch.hostcheck.parsers.fielded import Aliases, FieldedParser
from exwatch.hostcheck.records import Kind

RPS_CMDLET_FIELDS = (
    "DateTime", "StartTime", "RequestId", "ClientRequestId", "MajorVersion", "MinorVersion",
    "BuildVersion", "RevisionVersion", "ServerHostName", "ProcessId", "ProcessName", "ThreadId",
    "CultureInfo", "Organization", "AuthenticatedUser", "ExecutingUserSid",
    "EffectiveOrganization", "UserServicePlan", "IsAdmin", "ClientApplication", "Cmdlet",
    "Parameters", "CmdletUniqueId", "UserBudgetOnStart", "ContributeToFailFast",
    "RunspaceSettingsCreationHint", "ADViewEntireForest", "ADRecipientViewRoot",
    "ADConfigurationDomainControllers", "ADPreferredGlobalCatalogs",
    "ADPreferredDomainControllers", "ADUserConfigurationDomainController",
    "ADUserPreferredGlobalCatalog", "ADuserPreferredDomainControllers", "ThrottlingInfo",
    "DelayInfo", "ThrottlingDelay", "IsOutputObjectRedacted", "CmdletProxyStage",
    "CmdletProxyRemoteServer", "CmdletProxyRemoteServerVersion", "CmdletProxyMethod",
    "ProxiedObjectCount", "CmdletProxyLatency", "OutputObjectCount", "ParameterBinding",
    "BeginProcessing", "ProcessRecord", "EndProcessing", "StopProcessing", "BizLogic",
    "PowerShellLatency", "UserInteractionLatency", "ProvisioningLayerLatency",
    "ActivityContextLifeTime", "TotalTime", "ErrorType", "ExecutionResult", "CacheHitCount",
    "CacheMissCount", "GenericLatency", "GenericInfo", "GenericErrors", "ObjectGuid",
    "ExternalDirectoryOrganizationId", "ExternalDirectoryObjectId", "NonPiiParameters",
)  # fmt: skip


class CmdletParser(FieldedParser):
    kind = Kind.CMDLET
    data_format = "Exchange Rps_Cmdlet / CmdletInfra log"
    default_fields = RPS_CMDLET_FIELDS
    block_layout = "csv"
    expected_fields = ("DateTime", "Cmdlet", "Parameters")
    aliases: ClassVar[Aliases] = {
        "username": "authenticateduser",
        "client_application": "clientapplication",
        "process": "processname",
    }


__all__ = ["RPS_CMDLET_FIELDS", "CmdletParser"]
